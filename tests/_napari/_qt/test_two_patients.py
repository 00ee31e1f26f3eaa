"""Two patients in one viewer (issue 18): each keeps its results, one is shown at a time, and the
redraws of segment / compare / grid on / grid off / another patient do not crash.

The phantom test is the quick one (random-weight models, small phantoms of different sizes); the
realdata one opens LIDC-IDRI-0001 and LUNG1-001 (two scanners, different z ranges) with the
bundled weights. A screenshot after each step lands in test-artifacts/screenshots/.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_lungkd._napari.framing import grid_of

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def second_case(tmp_path_factory):
    """Another phantom patient: 96 x 96 pixels, 20 slices (other extent than ``case``)."""
    from napari_lungkd.io import load_ct
    from napari_lungkd.phantom import make_phantom, write_case

    out = tmp_path_factory.mktemp("case2")
    paths = write_case(make_phantom(seed=11, size=96, n_slices=20), out, n_readers=2, seed=11)
    return load_ct(paths["series_dir"]), paths


def _open(viewer, ct):
    from napari.layers import Layer

    from napari_lungkd._napari.layers import ct_layer_data

    return viewer.add_layer(Layer.create(*ct_layer_data(ct)))


def _segment_with_teacher(qtbot, widget, timeout=300_000):
    panel = widget.compare_panel
    if panel.teacher_check.isChecked():  # already on: run the student, the teacher follows
        widget.segment("student")
    else:
        panel.teacher_check.setChecked(True)
    qtbot.waitUntil(
        lambda: "teacher" in widget.session.results and widget.job is None, timeout=timeout
    )


def _shot(viewer, qtbot, artifacts, name):
    qtbot.waitUntil(lambda: all(layer.loaded for layer in viewer.layers), timeout=20_000)
    shot = viewer.screenshot(str(artifacts / name), canvas_only=False, flash=False)
    assert shot[..., :3].std() > 5, name  # a picture, not a blank window


def _visible_owners(viewer) -> set:
    return {
        id(layer.metadata["lungkd_ct"])
        for layer in viewer.layers
        if layer.visible and "lungkd_ct" in layer.metadata
    }


def _check_grid_on_off(viewer, widget, qtbot, artifacts, tag):
    panel = widget.compare_panel
    panel.grid_check.setChecked(True)
    assert grid_of(viewer).enabled
    _shot(viewer, qtbot, artifacts, f"two_patients_{tag}_grid_on.png")
    panel.grid_check.setChecked(False)
    assert not grid_of(viewer).enabled and widget.layer("grid ct") is None
    visible = [layer for layer in viewer.layers if layer.visible]
    # the student's mask, the one judged and edited, is on top again after the grid
    assert visible[-1] is widget.layer("mask", "student")
    _shot(viewer, qtbot, artifacts, f"two_patients_{tag}_grid_off.png")


def test_two_patients_keep_their_results_and_show_one_at_a_time(
    setup, second_case, teacher, qtbot, artifacts
):
    viewer, widget, a_layer, a_ct = setup
    b_ct, _ = second_case
    widget.session.weights["teacher"] = teacher
    _segment_with_teacher(qtbot, widget)
    a_student = widget.layer("mask", "student")
    assert a_student.name == f"{a_ct.patient_id} · student"
    assert a_student.contour > 0  # outlines by default
    a_mask = a_student.data.copy()
    _shot(viewer, qtbot, artifacts, "two_patients_a_segmented.png")
    _check_grid_on_off(viewer, widget, qtbot, artifacts, "a")

    # the second patient: the widget follows it, the first patient's layers are hidden
    b_layer = _open(viewer, b_ct)
    assert widget.segment_panel.ct_combo.currentText() == b_layer.name
    assert widget.session.ct is b_ct and widget.session.results == {}
    assert widget.nodule_table.rowCount() == 0 and "not segmented" in (
        widget.segment_panel.status.text()
    )
    assert _visible_owners(viewer) == {id(b_ct)}
    z = b_layer.extent.world[:, 0]
    assert viewer.dims.range[0].start == pytest.approx(z[0])  # the slider spans this CT only
    assert viewer.dims.range[0].stop == pytest.approx(z[1])
    _shot(viewer, qtbot, artifacts, "two_patients_b_opened.png")

    _segment_with_teacher(qtbot, widget)
    b_student = widget.layer("mask", "student")
    assert b_student is not a_student and b_student.name == f"{b_ct.patient_id} · student"
    assert a_student in viewer.layers and np.array_equal(a_student.data, a_mask)  # not replaced
    assert not a_student.visible
    _shot(viewer, qtbot, artifacts, "two_patients_b_segmented.png")
    _check_grid_on_off(viewer, widget, qtbot, artifacts, "b")

    # choosing a layer of the first patient brings it back, with its own table and status
    viewer.layers.selection.active = a_student
    assert widget.session.ct is a_ct
    assert widget.nodule_table.rowCount() == len(widget.session.results["student"].nodules)
    assert widget.session.results["student"].mask.shape == a_ct.shape
    assert _visible_owners(viewer) == {id(a_ct)}
    assert viewer.dims.range[0].stop == pytest.approx(a_layer.extent.world[1, 0])
    widget.view_panel.fill_check.setChecked(True)
    assert a_student.contour == 0
    _shot(viewer, qtbot, artifacts, "two_patients_a_again_filled.png")
    widget.view_panel.fill_check.setChecked(False)

    # closing the second patient's CT forgets its results
    viewer.layers.remove(b_layer)
    assert not widget.session.knows(b_ct)


@pytest.mark.realdata
@pytest.mark.slow
def test_two_real_patients_in_one_viewer(make_napari_viewer, qtbot, lidc0001, realdata, artifacts):
    """LIDC-IDRI-0001 and LUNG1-001 (different scanners and z ranges) with the bundled weights:
    segment both with the teacher, grid on and off, a screenshot after each step, no crash."""
    lung1 = realdata / "more_chests" / "LUNG1-001" / "image"
    if not lung1.is_dir():
        pytest.skip(f"{lung1} not found")
    from napari_lungkd._napari._qt.widget import LungNodulesWidget
    from napari_lungkd.models.weights import resolve_weights

    for model in ("student", "teacher"):
        try:
            resolve_weights(model)
        except Exception as exc:  # noqa: BLE001
            pytest.skip(f"no {model} weights: {exc}")
    viewer = make_napari_viewer()
    viewer.window._qt_window.resize(1500, 950)
    widget = LungNodulesWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    widget.segment_panel.device_combo.setCurrentText("cpu")
    segs = {}
    for tag, path in (("0001", lidc0001), ("lung1", lung1)):
        viewer.open(str(path), plugin="napari-lungkd")
        ct = widget.session.ct
        assert ct is not None and widget.segment_panel.ct_combo.currentText() == ct.name
        _shot(viewer, qtbot, artifacts, f"two_real_{tag}_opened.png")
        _segment_with_teacher(qtbot, widget, timeout=900_000)
        segs[tag] = (ct, widget.session.results["student"])
        assert _visible_owners(viewer) == {id(ct)}
        _shot(viewer, qtbot, artifacts, f"two_real_{tag}_segmented.png")
        widget.nodule_table.jump_to(0)
        _check_grid_on_off(viewer, widget, qtbot, artifacts, f"real_{tag}")
    # each patient's results stay attached to it
    for ct, seg in segs.values():
        assert widget.session.results_of(ct)["student"] is seg
        layer = next(
            lyr
            for lyr in viewer.layers
            if lyr.metadata.get("lungkd_ct") is ct
            and lyr.metadata.get("lungkd_role") == "mask"
            and lyr.metadata.get("lungkd_model") == "student"
        )
        assert layer.data.shape == ct.shape and layer.name.startswith(ct.patient_id)
