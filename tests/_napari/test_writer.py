"""The GUI's mask save (npe2 writer, Save button) and `lungkd segment` write the same files.

Both go through :func:`napari_lungkd.io.masks.save_mask`; this drives the GUI side through
``_napari/writer.py`` (no display needed) on the mask the CLI saved, for the same DICOM CT.
"""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from dicom_factory import make_slice
from pydicom.uid import generate_uid

from napari_lungkd._napari.writer import save_layer, write_mask
from napari_lungkd.cli.main import main
from napari_lungkd.errors import ExportError
from napari_lungkd.io import load_ct
from napari_lungkd.io.dicom.seg import read_dicom_seg
from napari_lungkd.io.masks import read_mask
from napari_lungkd.io.sidecar import SCHEMA


def write_dicom_chest(folder) -> None:
    """A tiny chest (6 slices of 96 x 96: body, two lungs, a blob) as a DICOM series."""
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[:96, :96]
    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    for k in range(6):
        hu = np.full((96, 96), -1000, np.int16)
        hu[((yy - 48) / 40) ** 2 + ((xx - 48) / 44) ** 2 < 1] = 40
        for cx in (30, 66):
            hu[((yy - 48) / 25) ** 2 + ((xx - cx) / 12) ** 2 < 1] = -850
        if k in (2, 3):
            hu[44:52, 62:70] = 100
        make_slice(
            folder / f"IM{k:03d}",  # no suffix: found by its header
            hu=hu,
            ipp=(-38.4, -20.0, -100.0 + 2.5 * k),
            instance=k + 1,
            series_uid=series_uid,
            study_uid=study_uid,
            spacing=(0.8, 0.8),
        )
        ds = pydicom.dcmread(folder / f"IM{k:03d}")
        ds.FrameOfReferenceUID = frame_uid  # a DICOM-SEG needs it
        ds.save_as(folder / f"IM{k:03d}")


def test_cli_and_gui_save_write_the_same_files_and_sidecar_schema(tmp_path):
    scan = tmp_path / "scan"
    write_dicom_chest(scan)
    out = tmp_path / "cli"
    args = ["segment", str(scan), "--weights", "random", "--device", "cpu", "--out", str(out)]
    assert main([*args, "--dicom-seg"]) == 0
    (case_dir,) = out.iterdir()
    cli_files = sorted(p.name for p in case_dir.iterdir() if p.name.startswith("student_mask"))
    assert cli_files == ["student_mask.json", "student_mask.nii.gz", "student_mask.seg.dcm"]
    cli_sidecar = json.loads((case_dir / "student_mask.json").read_text())
    report = json.loads((case_dir / "report.json").read_text())
    assert report["models"]["student"]["files"]["sidecar"].endswith("student_mask.json")

    # the GUI: a Labels layer holding the model's mask, with the CT and the run's provenance
    ct = load_ct(scan)
    mask = read_mask(case_dir / "student_mask.nii.gz", ct)
    gui_dir = tmp_path / "gui"
    gui_dir.mkdir()
    metadata = {
        "lungkd_ct": ct,
        "lungkd_model_mask": mask.copy(),
        "lungkd_provenance": cli_sidecar["provenance"],
    }
    written = write_mask(str(gui_dir / "student_mask.nii.gz"), mask, {"metadata": metadata})
    assert sorted(p.name for p in gui_dir.iterdir()) == cli_files
    assert sorted(written) == sorted(str(gui_dir / n) for n in cli_files)
    gui_sidecar = json.loads((gui_dir / "student_mask.json").read_text())

    assert gui_sidecar.keys() == cli_sidecar.keys() and cli_sidecar["schema"] == SCHEMA
    assert gui_sidecar["ct"] == cli_sidecar["ct"] and gui_sidecar["mask"] == cli_sidecar["mask"]
    assert gui_sidecar["provenance"] == cli_sidecar["provenance"]
    assert cli_sidecar["model"] == "student" and cli_sidecar["ct"]["series_uid"] == ct.series_uid
    assert cli_sidecar["edits"] is None  # the CLI saves the model's own mask
    assert gui_sidecar["edits"]["voxels_added"] == 0 == gui_sidecar["edits"]["voxels_removed"]
    for folder in (case_dir, gui_dir):
        np.testing.assert_array_equal(read_mask(folder / "student_mask.nii.gz", ct), mask)
        np.testing.assert_array_equal(read_dicom_seg(folder / "student_mask.seg.dcm", ct), mask)


def test_save_layer_refuses_a_layer_without_ct_and_existing_files(tmp_path):
    with pytest.raises(ExportError, match="carries no CT geometry"):
        save_layer(tmp_path / "m.nii.gz", np.zeros((2, 3, 4), np.uint8), {})
    from napari_lungkd.ct import CtVolume

    ct = CtVolume(hu=np.zeros((2, 3, 4), np.int16), spacing_mm=(1.0, 1.0, 1.0), origin_mm=(0, 0, 0))
    save_layer(tmp_path / "m.nii.gz", np.ones((2, 3, 4), np.uint8), {"lungkd_ct": ct})
    with pytest.raises(ExportError, match="already exists"):
        save_layer(tmp_path / "m.nii.gz", np.zeros((2, 3, 4), np.uint8), {"lungkd_ct": ct})
    assert read_mask(tmp_path / "m.nii.gz", ct).all()


def test_painted_voxels_join_the_nodule_they_touch_or_become_new_ones():
    from napari_lungkd._napari.result_layers import EDIT_LABEL
    from napari_lungkd._napari.writer import settle_edits

    mask = np.zeros((3, 10, 10), dtype=np.uint8)
    mask[1, 1:3, 1:3] = 1
    mask[1, 6:8, 6:8] = 2
    mask[1, 3, 1:3] = EDIT_LABEL  # grows nodule 1
    mask[0, 8:10, 0:2] = EDIT_LABEL  # a new nodule, touching none
    out = settle_edits(mask)
    assert EDIT_LABEL not in out and np.array_equal(out > 0, mask > 0)
    assert (out[1, 3, 1:3] == 1).all() and (out[1, 6:8, 6:8] == 2).all()
    assert (out[0, 8:10, 0:2] == 3).all()
    plain = np.where(mask == EDIT_LABEL, 0, mask).astype(np.uint8)
    assert settle_edits(plain) is plain  # nothing painted: saved as it is
