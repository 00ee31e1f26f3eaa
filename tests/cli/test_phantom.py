"""``lungkd phantom`` writes N cases and a JSON summary, and refuses bad arguments."""

from __future__ import annotations

import json

import numpy as np

from napari_lungkd.cli.main import main


def test_phantom_command_writes_cases_and_json(tmp_path, capsys):
    out = tmp_path / "cases"
    rc = main(
        [
            "phantom",
            "--n-cases",
            "2",
            "--out",
            str(out),
            "--seed",
            "5",
            "--size",
            "64",
            "--n-slices",
            "10",
            "--n-readers",
            "2",
            "--json",
            str(tmp_path / "s.json"),
        ]
    )
    assert rc == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert [c["seed"] for c in summary["cases"]] == [5, 6]
    for case in summary["cases"]:
        series = out / case["patient_id"] / "series"
        assert len(list(series.glob("*.dcm"))) == 10
        assert (series / "reads.xml").is_file()
        facts = json.loads((out / case["patient_id"] / "nodules.json").read_text())
        assert len(facts["readers"]) == 2 and len(facts["nodules"]) == case["n_nodules"]
    assert summary["seconds_per_case"] > 0
    assert "wrote 2 case(s)" in capsys.readouterr().out


def test_phantom_command_refuses_zero_cases(tmp_path):
    import pytest

    with pytest.raises(SystemExit) as err:
        main(["phantom", "--n-cases", "0", "--out", str(tmp_path)])
    assert err.value.code not in (0, None)


def _host_file(tmp_path):
    """A small synthetic chest (HU) as NIfTI, and a 'lesion' mask on its grid."""
    import SimpleITK as sitk
    from synthetic_host import synthetic_chest

    ct, _ = synthetic_chest()
    image = sitk.GetImageFromArray(ct.hu)
    image.SetSpacing(tuple(float(s) for s in ct.spacing_mm[::-1]))
    image.SetOrigin(ct.origin_mm)
    host = tmp_path / "host.nii.gz"
    sitk.WriteImage(image, str(host))
    lesion = np.zeros(ct.shape, np.uint8)
    lesion[14:26, 60:100, 120:150] = 1
    mask = sitk.GetImageFromArray(lesion)
    mask.CopyInformation(image)
    ignore = tmp_path / "gtv.nii.gz"
    sitk.WriteImage(mask, str(ignore))
    return host, ignore, lesion


def test_phantom_host_writes_inserted_cases_that_load_back(tmp_path, capsys):
    from napari_lungkd.io.load import load_ct
    from napari_lungkd.io.masks import read_mask
    from napari_lungkd.lidc.parse import parse_lidc_xml
    from napari_lungkd.phantom import insert_nodules

    host, ignore, lesion = _host_file(tmp_path)
    out = tmp_path / "cases"
    args = ["phantom", "--host", str(host), "--host-ignore", str(ignore), "--n-cases", "2"]
    args += [
        "--seed",
        "3",
        "--n-nodules",
        "3",
        "--out",
        str(out),
        "--json",
        str(tmp_path / "s.json"),
    ]
    assert main(args) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert [c["seed"] for c in summary["cases"]] == [3, 4]
    host_ct = load_ct(host)
    for case in summary["cases"]:
        case_dir = out / case["patient_id"]
        assert case["patient_id"].startswith("LKD-INSERT-")
        written = load_ct(case_dir / "series")
        again = insert_nodules(host_ct, case["seed"], n_nodules=3, ignore=lesion)
        assert np.array_equal(written.hu, again.ct.hu)  # the DICOM series holds the inserted CT
        assert written.series_uid != host_ct.series_uid
        truth = read_mask(case_dir / "truth_labels.nii.gz", written)
        assert np.array_equal(truth, again.labels) and truth.max() == case["n_nodules"] > 0
        ign = read_mask(case_dir / "ignore.nii.gz", written).astype(bool)
        assert (ign >= lesion.astype(bool)).all() and not (ign & (truth > 0)).any()
        facts = json.loads((case_dir / "nodules.json").read_text())
        assert len(facts["nodules"]) == case["n_nodules"] and facts["host_look"]["noise_hu"] > 0
        read = parse_lidc_xml(case_dir / "series" / "reads.xml")
        assert read is not None
    assert "wrote 2 case(s)" in capsys.readouterr().out


def test_phantom_host_refuses_a_missing_host_and_a_mask_off_its_grid(tmp_path, capsys):
    import SimpleITK as sitk

    rc = main(["phantom", "--host", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    host, _, _ = _host_file(tmp_path)
    small = sitk.GetImageFromArray(np.zeros((4, 8, 8), np.uint8))
    sitk.WriteImage(small, str(tmp_path / "small.nii.gz"))
    rc = main(
        ["phantom", "--host", str(host), "--host-ignore", str(tmp_path / "small.nii.gz")]
        + ["--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "not on this CT's grid" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
