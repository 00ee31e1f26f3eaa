"""Correcting and saving in the real viewer (Xvfb): paint, rescore, save both masks, reload, the
npe2 writer. Fixtures (``setup``...) are in ``conftest.py``; the flows live in ``_qt/mask_flow.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import Qt
from widget_runs import panel_value as _value
from widget_runs import run_and_wait

from napari_lungkd._napari.result_layers import EDIT_LABEL

pytestmark = pytest.mark.gui


def test_correct_save_reload_voxel_for_voxel(setup, qtbot, tmp_path, monkeypatch):
    import SimpleITK as sitk
    from qtpy.QtWidgets import QMessageBox

    viewer, widget, ct_layer, ct = setup
    assert run_and_wait(qtbot, widget).state == "done"
    layer = widget.layer("mask", "student")
    model_mask = layer.data.copy()
    # paint a correction with napari's own brush, and erase one model voxel
    z = ct.shape[0] // 2
    viewer.dims.set_current_step(0, z)
    layer.brush_size = 5
    assert layer.selected_label == EDIT_LABEL  # the brush paints corrections in their own label
    world = np.asarray(ct_layer.translate) + np.array([z, 20, 20]) * np.asarray(ct_layer.scale)
    layer.paint(layer.world_to_data(world), layer.selected_label)
    assert (layer.data == EDIT_LABEL).any()
    on = np.argwhere(model_mask)
    layer.data[tuple(on[0])] = 0
    edited = layer.data.copy()
    added = int(np.count_nonzero((edited > 0) & (model_mask == 0)))
    assert added > 0 and not np.array_equal(edited, model_mask)

    viewer.layers.selection.active = layer
    widget.save_panel.nrrd_check.setChecked(True)
    written = widget.masks.save(tmp_path / "edited.nii.gz")
    assert set(written) == {"mask", "nrrd", "dicom_seg", "sidecar", "model mask", "model sidecar"}
    from napari_lungkd.io.masks import read_mask

    assert np.array_equal(read_mask(written["model mask"], ct) > 0, model_mask > 0)
    sidecar = json.loads(written["sidecar"].read_text())
    assert sidecar["edits"]["voxels_added"] == added and sidecar["edits"]["voxels_removed"] == 1
    assert sidecar["model"] == "student" and len(sidecar["weights_sha256"]) == 64
    assert sidecar["threshold"] == pytest.approx(widget.segment_panel.threshold.value())

    # the NIfTI carries the CT's geometry
    img = sitk.ReadImage(str(written["mask"]))
    assert np.allclose(img.GetSpacing(), ct.spacing_mm[::-1]) and np.allclose(
        img.GetOrigin(), ct.origin_mm
    )

    for kind in ("mask", "nrrd", "dicom_seg"):
        loaded = widget.masks.load(written[kind])
        assert np.array_equal(loaded.data, (edited > 0).astype(np.uint8)), kind
        assert np.allclose(loaded.scale, ct_layer.scale) and np.allclose(
            loaded.translate, ct_layer.translate
        )
        assert loaded.metadata["lungkd_ct"] is ct

    # an existing file is never replaced without asking
    before = written["mask"].read_bytes()
    layer.data[:] = 0
    viewer.layers.selection.active = layer
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.No)
    assert widget.masks.save(tmp_path / "edited.nii.gz") is None
    assert written["mask"].read_bytes() == before
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    assert widget.masks.save(tmp_path / "edited.nii.gz") is not None
    assert not widget.masks.load(written["mask"]).data.any()


def test_npe2_writer_saves_from_file_menu_path(setup, qtbot, tmp_path):
    viewer, widget, ct_layer, ct = setup
    assert run_and_wait(qtbot, widget).state == "done"
    layer = widget.layer("mask", "student")
    viewer.layers.selection = {layer}
    out = viewer.layers.save(
        str(tmp_path / "from_menu.nii.gz"), selected=True, plugin="napari-lungkd"
    )
    assert str(tmp_path / "from_menu.nii.gz") in [str(p) for p in out]
    from napari_lungkd.io.masks import read_mask

    assert np.array_equal(read_mask(tmp_path / "from_menu.nii.gz", ct) > 0, layer.data > 0)
    assert (tmp_path / "from_menu.json").is_file()


def test_an_edit_shows_rescoring_counts_it_and_both_masks_are_saved(
    setup, qtbot, tmp_path, monkeypatch, artifacts
):
    from qtpy.QtWidgets import QFileDialog, QMessageBox

    from napari_lungkd.io.masks import read_mask
    from napari_lungkd.scoring.metrics import dice

    viewer, widget, ct_layer, ct = setup
    monkeypatch.setenv("LUNGKD_RESULTS_DIR", str(tmp_path / "results"))
    assert run_and_wait(qtbot, widget).state == "done"
    layer = widget.layer("mask", "student")
    original = widget.layer("model mask", "student")
    cons = widget.layer("lidc consensus").data > 0
    model_mask = layer.data.copy()
    assert np.array_equal(original.data, model_mask) and not original.editable
    before = _value(widget.lidc_panel, "Dice vs consensus", "student")

    # the reader's nodule painted in with napari's brush: its own label, its own colour
    z, y, x = np.argwhere(cons)[int(cons.sum()) // 2]  # a voxel of the readers' nodule
    viewer.dims.set_current_step(0, z)
    layer.brush_size = 9
    world = np.asarray(ct_layer.translate) + np.array([z, y, x]) * np.asarray(ct_layer.scale)
    layer.paint(layer.world_to_data(world), layer.selected_label)
    painted = layer.data == EDIT_LABEL
    assert painted.any() and layer.colormap.map(np.array([EDIT_LABEL]))[0][3] > 0
    assert not np.allclose(
        layer.colormap.map(np.array([EDIT_LABEL])), layer.colormap.map(np.array([1]))
    )
    assert _value(widget.lidc_panel, "Dice vs consensus", "student") == before  # stale ...
    qtbot.mouseClick(widget.save_panel.rescore_button, Qt.LeftButton)  # ... until recomputed
    after = _value(widget.lidc_panel, "Dice vs consensus", "student")
    assert after == pytest.approx(dice(layer.data > 0, cons), abs=1e-3) and after != before
    assert "+" in widget.save_panel.status.text()
    widget.tabs.setCurrentWidget(widget.save_panel)
    viewer.screenshot(str(artifacts / "widget_edit_rescored.png"), canvas_only=False)

    # Save: the LIDC consensus selected is never what is written; the tab says what will be
    viewer.layers.selection.active = widget.layer("lidc consensus")
    assert widget.masks.mask_layer() is layer
    assert layer.name in widget.save_panel.target.text()
    proposed = {}

    def dialog(parent, caption, start, *args, **kwargs):
        proposed["path"] = start
        return start, ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog)
    written = widget.masks.save()
    start = Path(proposed["path"])
    assert start.is_relative_to(tmp_path / "results") and ct.patient_id in start.name
    assert written["mask"] == start and written["model mask"].parent == start.parent
    saved = read_mask(written["mask"], ct)
    assert np.array_equal(saved > 0, layer.data > 0) and EDIT_LABEL not in saved
    assert np.array_equal(read_mask(written["model mask"], ct) > 0, model_mask > 0)
    sidecar = json.loads(written["sidecar"].read_text())
    assert sidecar["edits"]["voxels_added"] == int((painted & (model_mask == 0)).sum()) > 0

    # never into the CT's source folder without asking
    source = Path(ct.metadata.get("series_folder") or ct.source)
    files_before = sorted(source.iterdir())
    asked = []

    def no(*args, **kwargs):
        asked.append(args[1] if len(args) > 1 else "")
        return QMessageBox.No

    monkeypatch.setattr(QMessageBox, "question", no)
    assert widget.masks.save(source / "mask.nii.gz") is None
    assert asked and "source" in asked[0] and sorted(source.iterdir()) == files_before
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    widget.save_panel.seg_check.setChecked(False)
    written = widget.masks.save(source / "mask.nii.gz")  # asked, and the user said yes
    try:
        assert written is not None and written["mask"].is_file()
    finally:
        for path in (written or {}).values():
            path.unlink(missing_ok=True)
    assert sorted(source.iterdir()) == files_before
