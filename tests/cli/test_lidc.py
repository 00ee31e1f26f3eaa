"""``lungkd lidc``: the JSON it writes, its refusals, and masks in the real CT's geometry."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lidc_xml_builders import two_reader_xml

from napari_lungkd.cli.main import main


@pytest.fixture
def xml_file(tmp_path):
    p = tmp_path / "read.xml"
    p.write_text(two_reader_xml())
    return p


def test_json_lists_annotations_and_nodules(xml_file, tmp_path, capsys):
    out = tmp_path / "out.json"
    assert main(["lidc", str(xml_file), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [(a["reader"], a["nodule_id"], a["voxels"]) for a in doc["annotations"]] == [
        (1, "N1", 18),
        (2, "IL057", 9),
    ]
    assert doc["annotations"][0]["voxels_per_z"] == {"-12.5": 9, "-10": 9}
    (nod,) = doc["nodules"]
    assert (nod["annotations"], nod["n_readers"], nod["consensus_voxels"]) == ([0, 1], 2, 23)
    assert doc["grid"]["kind"] == "xml" and doc["grid"]["shape_zyx"] == [4, 512, 512]
    assert "2 readers, 2 outlines, 1 nodule (" in capsys.readouterr().out


def test_level_and_edges_change_the_numbers(xml_file, tmp_path):
    out = tmp_path / "out.json"
    assert (
        main(["lidc", str(xml_file), "--level", "1.0", "--include-edges", "--json", str(out)]) == 0
    )
    doc = json.loads(out.read_text())
    assert [a["voxels"] for a in doc["annotations"]] == [50, 25]  # 5x5 with the outline
    # full agreement: the two 5x5 squares one pixel apart share 4x4 on z = -10
    assert doc["nodules"][0]["consensus_voxels"] == 16
    assert doc["settings"] == {"level": 1.0, "include_edges": True, "cluster_tol_mm": 3.0}


def test_radiograph_read_exits_2_with_one_line(tmp_path, capsys):
    p = tmp_path / "cxr.xml"
    p.write_text('<?xml version="1.0"?><IdriReadMessage xmlns="http://www.nih.gov/idri"/>')
    assert main(["lidc", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "chest-radiograph read" in err and "cxr.xml" in err


def test_masks_need_a_ct(xml_file, tmp_path, capsys):
    assert main(["lidc", str(xml_file), "--masks", str(tmp_path / "m.nii.gz")]) == 2
    assert "--masks needs --ct" in capsys.readouterr().err


def test_bad_level_is_refused(xml_file, capsys):
    assert main(["lidc", str(xml_file), "--level", "0"]) == 2
    assert "--level 0.0 is not in (0, 1]" in capsys.readouterr().err


@pytest.mark.realdata
def test_real_ct_masks_in_ct_geometry(lidc0001, tmp_path):
    from napari_lungkd.io import load_ct
    from napari_lungkd.io.masks import read_mask

    out_json = tmp_path / "0001.json"
    out_mask = tmp_path / "0001_consensus.nii.gz"
    args = ["lidc", str(lidc0001 / "069.xml"), "--ct", str(lidc0001)]
    assert main([*args, "--json", str(out_json), "--masks", str(out_mask)]) == 0
    doc = json.loads(out_json.read_text())
    assert doc["grid"]["kind"] == "ct" and doc["nodules"][0]["consensus_voxels"] == 5428
    ct = load_ct(lidc0001)
    mask = read_mask(out_mask, ct)
    assert mask.shape == ct.shape and int((mask > 0).sum()) == 5428
    assert ct.hu[mask > 0].mean() > -300
    assert np.unique(mask).tolist() == [0, 1]
