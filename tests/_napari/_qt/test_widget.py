"""The dock widget in a real napari viewer (Xvfb): segment, cancel, jump, correct, save, reload.

The CT is a small synthetic phantom written as a DICOM series with its LIDC XML; the student is a
random-weight model saved with ``save_weights`` (so the masks are noise: the threshold is chosen in
a fixture so that the mask holds a few blobs, which is all the flow needs). The fixtures (``case``,
``student``, ``teacher``, ``setup``) are in ``conftest.py``, shared with ``test_widget_grid.py``;
correcting and saving are in ``test_mask_flow.py``.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from qtpy.QtCore import Qt
from widget_runs import panel_value as _value
from widget_runs import run_and_wait

from napari_lungkd._napari.framing import camera_of, grid_of

pytestmark = pytest.mark.gui


def test_segment_keeps_viewer_responsive_and_aligns_layers(setup, qtbot, artifacts):
    from qtpy.QtCore import QTimer

    viewer, widget, ct_layer, ct = setup
    ticks = {"while_running": 0}

    def tick():
        if widget.job is not None and widget.job.is_running:
            ticks["while_running"] += 1

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)
    qtbot.mouseClick(widget.segment_panel.segment_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: widget.job is None, timeout=120_000)
    timer.stop()
    job = widget.last_job
    assert job.state == "done", job.error
    # the GUI thread kept turning while the model ran in the worker thread
    assert ticks["while_running"] >= 5

    mask = widget.layer("mask", "student")
    prob = widget.layer("probability", "student")
    seg = widget.session.results["student"]
    for layer in (mask, prob):
        assert np.allclose(layer.scale, ct_layer.scale) and np.allclose(
            layer.translate, ct_layer.translate
        )
        assert layer.metadata["lungkd_ct"] is ct
    assert not prob.visible and mask.visible and mask.editable
    assert np.array_equal(mask.data, seg.mask) and mask.data.any()
    assert widget.segment_panel.progress_bar.format().startswith("done")

    # the nodule table lists the nodules; a click goes to the nodule's centre slice
    table = widget.nodule_table
    assert table.rowCount() == len(seg.nodules) >= 1
    row = 0  # the first row: plausible rows first (nodule_table.rank), then the largest
    nod = table.nodules[row]
    qtbot.mouseClick(
        table.viewport(), Qt.LeftButton, pos=table.visualRect(table.model().index(row, 1)).center()
    )
    assert viewer.dims.current_step[0] == int(round(nod.centroid_zyx[0]))
    world_yx = (
        np.asarray(ct_layer.translate)[1:]
        + np.asarray(nod.centroid_zyx)[1:] * np.asarray(ct_layer.scale)[1:]
    )
    assert np.allclose(camera_of(viewer).center[-2:], world_yx, atol=1e-3)
    assert float(table.item(row, 1).text()) == pytest.approx(nod.volume_mm3, abs=0.06)
    viewer.screenshot(str(artifacts / "widget_segmented.png"), canvas_only=False)


def test_cancel_stops_the_worker_and_adds_nothing(setup, qtbot):
    viewer, widget, ct_layer, ct = setup
    widget.session.batch_size = 1
    seen = []

    def on_progress(p):
        seen.append(p)
        if p.stage == "model" and p.done >= 1:
            widget.cancel()

    widget.segment()
    job = widget.job
    job.worker.yielded.connect(on_progress)
    qtbot.waitUntil(lambda: widget.job is None, timeout=120_000)
    assert job.state == "cancelled"
    model_steps = [p for p in seen if p.stage == "model"]
    assert model_steps and model_steps[-1].done < model_steps[-1].total  # stopped mid-volume
    assert job._gen.gi_frame is None  # the core generator was closed (its finally blocks ran)
    assert (
        widget.layer("mask", "student") is None and widget.layer("probability", "student") is None
    )
    assert widget.segment_panel.progress_bar.format() == "cancelled"
    assert widget.segment_panel.segment_button.isEnabled()


def test_bad_weights_become_a_notification(setup, qtbot, tmp_path):
    from napari.utils.notifications import notification_manager

    viewer, widget, ct_layer, ct = setup
    messages = []
    notification_manager.notification_ready.connect(lambda n: messages.append(str(n.message)))
    widget.session.weights["student"] = tmp_path / "missing.safetensors"
    job = run_and_wait(qtbot, widget)
    assert job.state == "failed"
    assert any("missing.safetensors" in m and "Traceback" not in m for m in messages)
    assert widget.layer("mask", "student") is None
    assert widget.segment_panel.segment_button.isEnabled()


def test_teacher_toggle_compares_and_cleans_up(setup, teacher, qtbot, artifacts):
    from napari_lungkd.scoring.comparison import disagreement_labels
    from napari_lungkd.scoring.metrics import dice
    from napari_lungkd.scoring.speed import speedup

    viewer, widget, ct_layer, ct = setup
    widget.session.weights["teacher"] = teacher
    widget.compare_panel.teacher_check.setChecked(True)  # runs the student, then the teacher
    qtbot.waitUntil(
        lambda: "teacher" in widget.session.results and widget.job is None, timeout=300_000
    )
    s_seg, t_seg = widget.session.results["student"], widget.session.results["teacher"]
    assert t_seg.provenance.prepared_reused is True  # the teacher reused the student's input
    for role, model in (("mask", "student"), ("mask", "teacher"), ("disagreement", None)):
        layer = widget.layer(role, model)
        assert np.allclose(layer.scale, ct_layer.scale) and np.allclose(
            layer.translate, ct_layer.translate
        )
    s_col = widget.layer("mask", "student").colormap.map(np.array([1]))
    t_col = widget.layer("mask", "teacher").colormap.map(np.array([1]))
    assert not np.allclose(s_col, t_col)  # distinct colours
    shown = widget.layer("disagreement").data  # 1 student only, 2 teacher only, 3 both
    assert np.array_equal(
        np.where(shown == 3, 0, shown), disagreement_labels(s_seg.mask, t_seg.mask)
    )
    assert np.array_equal(shown == 3, (s_seg.mask > 0) & (t_seg.mask > 0))

    panel = widget.compare_panel
    assert _value(panel, "Dice", "student vs teacher") == pytest.approx(
        dice(s_seg.mask, t_seg.mask), abs=1e-3
    )
    assert _value(panel, "speed-up", "student vs teacher") == pytest.approx(
        speedup(t_seg.timings, s_seg.timings), rel=0.01
    )
    assert _value(panel, "parameters", "student") == s_seg.provenance.n_parameters
    assert _value(panel, "parameters", "teacher") > 4 * _value(panel, "parameters", "student")

    panel.grid_check.setChecked(True)
    assert grid_of(viewer).enabled
    widget.tabs.setCurrentWidget(panel)
    viewer.screenshot(str(artifacts / "widget_compare_grid.png"), canvas_only=False)
    panel.grid_check.setChecked(False)
    assert not grid_of(viewer).enabled and widget.layer("grid ct") is None
    assert widget.layer("lidc consensus").visible  # what the grid hid is shown again

    panel.teacher_check.setChecked(False)
    for role, model in (("mask", "teacher"), ("probability", "teacher"), ("disagreement", None)):
        assert widget.layer(role, model) is None
    assert widget.layer("mask", "student") is not None
    assert panel.value("Dice", "student vs teacher") is None


def test_lidc_readers_consensus_scores_and_csv(setup, qtbot, tmp_path, artifacts):
    from napari_lungkd.lidc import annotate
    from napari_lungkd.scoring.metrics import dice

    viewer, widget, ct_layer, ct = setup
    # the XML sits beside the DICOM files: found and shown when the CT was chosen
    readers = [lyr for lyr in viewer.layers if lyr.metadata.get("lungkd_role") == "lidc reader"]
    assert len(readers) == 4
    assert all(lyr.name.startswith(f"{ct.patient_id} · LIDC reader") for lyr in readers)
    assert all(lyr.contour > 0 for lyr in readers)  # outlines by default
    assert widget.layer("lidc consensus") is not None
    xml = widget.lidc.xml_path
    for layer in readers + [widget.layer("lidc consensus")]:
        assert np.allclose(layer.scale, ct_layer.scale) and np.allclose(
            layer.translate, ct_layer.translate
        )
    expected = annotate(xml, ct, level=0.5)
    assert np.array_equal(widget.layer("lidc consensus").data, expected.consensus_labels())

    # the agreement level rebuilds the consensus: stricter agreement, fewer (or equal) voxels
    loose = int((widget.layer("lidc consensus").data > 0).sum())
    widget.lidc_panel.level.setValue(1.0)
    strict = int((widget.layer("lidc consensus").data > 0).sum())
    assert strict <= loose and loose > 0
    assert np.array_equal(
        widget.layer("lidc consensus").data, annotate(xml, ct, level=1.0).consensus_labels()
    )
    widget.lidc_panel.level.setValue(0.5)

    assert run_and_wait(qtbot, widget).state == "done"
    panel = widget.lidc_panel
    mask = widget.layer("mask", "student").data
    cons = widget.layer("lidc consensus").data
    assert _value(panel, "Dice vs consensus", "student") == pytest.approx(
        dice(mask, cons > 0), abs=1e-3
    )
    r1 = readers[0].data
    assert _value(panel, "Dice vs reader 1", "student") == pytest.approx(dice(mask, r1), abs=1e-3)
    lo = _value(panel, "reader vs reader Dice (min)", "readers")
    hi = _value(panel, "reader vs reader Dice (max)", "readers")
    assert 0.0 <= lo <= hi <= 1.0 and hi > 0.3  # simulated readers mostly agree
    tp, fn = _value(panel, "nodules TP", "student"), _value(panel, "nodules FN", "student")
    assert tp + fn == len([n for n in expected.nodules if n.consensus_voxels])

    out = widget.lidc.export_csv(tmp_path / "scores.csv")
    rows = list(csv.DictReader(out.open()))
    assert {"quantity", "model", "value", "unit", "xml", "level"} <= set(rows[0])
    assert any(r["quantity"] == "Dice vs consensus" and r["model"] == "student" for r in rows)

    # show the readers on the nodule for the screenshot: hide the noise mask, jump to the nodule
    widget.layer("mask", "student").visible = False
    nod = max(expected.nodules, key=lambda n: n.consensus_voxels)
    z = int(round(nod.centroid_zyx[0]))
    viewer.dims.set_current_step(0, z)
    world = np.asarray(ct_layer.translate) + np.asarray(nod.centroid_zyx) * np.asarray(
        ct_layer.scale
    )
    camera = camera_of(viewer)
    camera.center = tuple(world[1:])
    camera.zoom = camera.zoom * 2.5
    widget.tabs.setCurrentWidget(panel)
    viewer.screenshot(str(artifacts / "widget_lidc_readers.png"), canvas_only=False)


def test_onnx_engine_gives_the_same_mask_as_pytorch(setup, qtbot, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    viewer, widget, ct_layer, ct = setup
    monkeypatch.setenv("LUNGKD_CACHE_DIR", str(tmp_path))  # the export lands in a fresh cache
    panel = widget.segment_panel
    assert panel.engine_combo.count() == 2 and panel.backend == "eager"
    assert run_and_wait(qtbot, widget).state == "done"
    eager = widget.session.results["student"]
    panel.engine_combo.setCurrentText("ONNX Runtime (CPU)")
    panel.device_combo.setCurrentText("cpu")
    try:
        job = run_and_wait(qtbot, widget)
        assert job.state == "done", job.error
        onnx = widget.session.results["student"]
        assert onnx.provenance.backend == "onnx" and onnx is not eager
        assert np.array_equal(widget.layer("mask", "student").data, onnx.mask)
        from napari_lungkd.scoring.metrics import dice

        assert dice(eager.mask > 0, onnx.mask > 0) >= 0.99  # the masks are labelled per nodule
        assert list((tmp_path / "onnx").glob("student-*.onnx"))
    finally:
        panel.engine_combo.setCurrentText("PyTorch")
        panel.device_combo.setCurrentText("auto")
