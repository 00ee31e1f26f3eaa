"""Accepting a candidate below the operating point by hand: the voxel and label logic on a small
synthetic label volume, the session's rules (no display), then the widget in a real viewer
(Xvfb): the mask layer gains exactly the candidate's voxels as a new label, the table its row,
the saved provenance says "added by hand", Ctrl+Z takes it out and leaves earlier edits alone."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import numpy as np
import pytest
from tiny_classifier import ct_with_a_vessel, write_tiny_classifier
from tiny_models import HuThresholdNet

from napari_lungkd._napari.accept_candidate import (
    ADDED_BY_HAND,
    MAX_LABEL,
    HandNodule,
    accept,
    candidate_voxels,
    hand_labels,
    hand_provenance,
    model_view,
    shown_base,
    with_hand_nodules,
)
from napari_lungkd._napari.result_layers import EDIT_LABEL
from napari_lungkd._napari.session import Session
from napari_lungkd.ct import CtVolume
from napari_lungkd.errors import LungKDError
from napari_lungkd.inference.candidates import Candidate, Candidates
from napari_lungkd.inference.fp_reduction import Triage
from napari_lungkd.inference.nodules import label_nodules

SPACING = (2.0, 1.0, 1.0)


@dataclass(frozen=True, eq=False)
class Result:
    """What the accept logic reads of a Segmentation (mask, nodules, probability, triage)."""

    mask: np.ndarray
    nodules: list
    probability: np.ndarray
    triage: object = None
    provenance: object = field(default_factory=lambda: SimpleNamespace(model="student"))


def synthetic():
    """(ct, the run, the result shown at 0.5): three candidates, labels 1, 2 and 5 in the label
    volume, scored 0.9, 0.2 and 0.1; the point keeps the first."""
    shape = (6, 20, 20)
    labels = np.zeros(shape, np.int32)
    labels[1:4, 2:6, 2:6] = 1
    labels[2:5, 10:13, 3:5] = 2
    labels[0:2, 14:18, 12:19] = 5
    items = []
    for label in (1, 2, 5):
        where = np.argwhere(labels == label)
        bbox = (*where.min(axis=0).tolist(), *(where.max(axis=0) + 1).tolist())
        items.append(Candidate(label, tuple(bbox), tuple(where.mean(axis=0).tolist())))
    triage = Triage(Candidates(labels, tuple(items), 0.3, True), np.array([0.9, 0.2, 0.1]), 0.5)
    probability = np.where(labels > 0, 0.6, 0.0).astype(np.float16)
    hu = np.where(labels > 0, 40, -850).astype(np.int16)
    ct = CtVolume(hu=hu, spacing_mm=SPACING, origin_mm=(0.0, 0.0, 0.0), source="synthetic")
    own = Result(np.zeros(shape, np.uint16), [], probability, triage)
    nodules, mask = label_nodules(labels == 1, SPACING, hu=hu, probability=probability, ct=ct)
    shown = Result(mask, [replace(nodules[0], score=0.9)], probability, triage)
    return ct, own, shown


def test_accepting_a_dropped_candidate_adds_exactly_its_voxels_as_the_next_label():
    ct, own, shown = synthetic()
    labels = own.triage.candidates.labels
    kept = np.array([True, False, False])
    # candidate i of the points layer is item i: index 2 is label 5 of the label volume
    assert np.array_equal(np.stack(candidate_voxels(own, 2)), np.stack(np.nonzero(labels == 5)))

    hand, seg = accept(shown, own, (), [1], kept, ct)
    assert len(hand) == 1 and len(seg.nodules) == 2
    added = seg.nodules[-1]
    assert isinstance(added, HandNodule) and added.added == ADDED_BY_HAND
    assert (added.label, added.candidate, added.candidate_label) == (2, 1, 2)
    assert added.score == pytest.approx(0.2) and added.n_voxels == int((labels == 2).sum())
    assert np.array_equal(seg.mask == 2, labels == 2)  # exactly the candidate's voxels
    assert np.array_equal(seg.mask == 1, shown.mask == 1)  # the kept nodule untouched
    assert hand_labels(seg) == [2]
    assert np.array_equal(model_view(seg).mask, shown.mask)  # the model's own leaves it out
    assert model_view(shown) is shown
    (entry,) = hand_provenance(seg)
    assert entry["label"] == 2 and entry["added"] == ADDED_BY_HAND
    assert entry["candidate"] == 1 and entry["candidate_label"] == 2
    assert entry["score"] == pytest.approx(0.2) and entry["n_voxels"] == added.n_voxels
    assert hand_provenance(shown) == []

    # a kept candidate, or one accepted before, is no new nodule; a wrong index is one sentence
    assert accept(seg, own, hand, [0, 1], kept, ct)[1] is None
    with pytest.raises(LungKDError, match="no candidate 7"):
        accept(seg, own, hand, [7], kept, ct)
    # another one on top: the next label, the first one's label unchanged
    hand, seg = accept(seg, own, hand, [2], kept, ct)
    assert [n.label for n in seg.nodules] == [1, 2, 3] and len(hand) == 2
    assert np.array_equal(seg.mask == 3, labels == 5) and np.array_equal(seg.mask == 2, labels == 2)

    # a point that keeps candidate 1 itself: only candidate 2 is added by hand (after it)
    at_low = Result(np.where(labels == 2, 2, shown.mask).astype(np.uint16), [], own.probability)
    at_low = replace(at_low, nodules=[*shown.nodules, replace(shown.nodules[0], label=2)])
    moved = with_hand_nodules(at_low, own, hand, np.array([True, True, False]))
    assert hand_labels(moved) == [3] and np.array_equal(moved.mask == 3, labels == 5)

    # what the user's edits are measured against when the point moves: the mask as shown
    base = shown_base(model_view(seg).mask.astype(np.uint8), seg)
    assert np.array_equal(base, seg.mask)
    assert MAX_LABEL < EDIT_LABEL  # a label added by hand never looks like the brush's


def test_without_a_classifier_the_candidates_are_the_runs_nodules():
    ct, _, shown = synthetic()
    mask = np.where(ct.hu > 0, 1, 0)
    nodules, labelled = label_nodules(mask, SPACING, hu=ct.hu, probability=shown.probability)
    own = Result(labelled, nodules, shown.probability)
    kept = np.array([i == 0 for i in range(len(nodules))])
    top = Result(np.where(labelled == 1, 1, 0).astype(np.uint16), nodules[:1], own.probability)
    hand, seg = accept(top, own, (), [2], kept, ct)
    assert np.array_equal(seg.mask == 2, labelled == nodules[2].label)
    assert seg.nodules[-1].n_voxels == nodules[2].n_voxels and seg.nodules[-1].score is None


@pytest.fixture(scope="module")
def triaged(tmp_path_factory):
    """(ct, the run of a tiny model and classifier): the ball kept, the vessel dropped."""
    pytest.importorskip("sklearn.ensemble")
    from napari_lungkd.inference import Segmenter
    from napari_lungkd.models.specs import get_spec
    from napari_lungkd.progress import run_to_end

    path = write_tiny_classifier(tmp_path_factory.mktemp("fp") / "tiny_fp.safetensors")
    ct = ct_with_a_vessel()
    segmenter = Segmenter((HuThresholdNet(), get_spec("student")), device="cpu", classifier=path)
    own = run_to_end(segmenter.iter_segment(ct))
    assert len(own.triage.candidates) == 2 and len(own.nodules) == 1
    return ct, own


def test_the_session_keeps_what_was_accepted_while_the_point_moves(triaged):
    ct, own = triaged
    session = Session()
    session.set_ct(ct, "CT")
    session.add_result("student", ct, own)
    dropped = int(np.flatnonzero(~own.triage.kept)[0])
    seg = session.accept_candidates("student", [dropped])
    assert len(seg.nodules) == 2 and hand_labels(seg) == [2]
    assert session.accept_candidates("student", [dropped]) is None
    prov = session.shown_provenance("student")
    assert [e["label"] for e in prov["added_by_hand"]] == [2]

    low = float(own.triage.scores[dropped])
    seg = session.set_operating_point("student", max(low - 0.01, 0.0))  # the model keeps it
    assert len(seg.nodules) == 2 and hand_labels(seg) == []
    assert "added_by_hand" not in session.shown_provenance("student")
    seg = session.set_operating_point("student", 0.5)  # dropped again: added by hand again
    assert hand_labels(seg) == [2]
    session.add_result("student", ct, own)  # a new run: nothing accepted
    assert hand_labels(session.results["student"]) == [] and not session.accepted
    with pytest.raises(LungKDError, match="Segment the CT with the teacher first"):
        session.accept_candidates("teacher", [0])


# ---- the widget, in a real viewer ------------------------------------------------------------
@pytest.mark.gui
def test_accept_in_the_widget_adds_the_nodule_saves_it_as_by_hand_and_undoes(
    make_napari_viewer, qtbot, triaged, tmp_path, artifacts
):
    from napari.layers import Layer
    from qtpy.QtCore import Qt

    from napari_lungkd._napari._qt.widget import LungNodulesWidget
    from napari_lungkd._napari.layers import ct_layer_data

    ct, own = triaged
    viewer = make_napari_viewer()
    viewer.add_layer(Layer.create(*ct_layer_data(ct)))
    widget = LungNodulesWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Lung nodules (KD)", area="right")
    viewer.window._qt_window.resize(1500, 950)
    control = widget.segment_panel.operating_point
    assert not control.accept_button.isEnabled()
    widget._segmented("student", ct, own)  # what a finished run does
    assert control.accept_button.isEnabled()  # one candidate is below the point

    mask, cands = widget.layer("mask", "student"), widget.layer("candidates", "student")
    dropped = int(np.flatnonzero(~cands.features["kept"])[0])
    candidate = own.triage.candidates.labels == own.triage.candidates.items[dropped].label
    assert not (mask.data[candidate]).any()
    # an edit by hand first, through the brush's history
    z, y, x = np.argwhere((own.mask == 0) & ~candidate)[0]
    mask.data_setitem((np.array([z]), np.array([y]), np.array([x])), EDIT_LABEL)

    cands.visible = True
    cands.selected_data = {dropped}
    qtbot.mouseClick(control.accept_button, Qt.LeftButton)
    assert mask is widget.layer("mask", "student")  # in place
    assert np.array_equal(mask.data == 2, candidate)  # exactly the candidate's voxels, label 2
    assert mask.data[z, y, x] == EDIT_LABEL
    assert np.array_equal(widget.layer("model mask", "student").data, own.mask)
    assert cands.features["accepted"][dropped]
    table = widget.nodule_table
    assert table.rowCount() == 2
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    row = [table.item(1, c).text() for c in range(table.columnCount())]
    assert row[0] == "2 (by hand)"
    assert row[headers.index("score")] == f"{own.triage.scores[dropped]:.2f}"
    assert "nodule 2 added by hand" in widget.segment_panel.status.text()

    viewer.dims.set_current_step(
        0, int(round(own.triage.candidates.items[dropped].centroid_zyx[0]))
    )
    viewer.layers.selection.active = cands
    viewer.screenshot(str(artifacts / "widget_accept_candidate.png"), canvas_only=False)

    written = widget.masks.save(tmp_path / "student_corrected.nii.gz")
    doc = json.loads(written["sidecar"].read_text())
    (entry,) = doc["provenance"]["added_by_hand"]
    assert entry["label"] == 2 and entry["added"] == "added by hand"
    assert entry["candidate"] == dropped and entry["n_voxels"] == int(candidate.sum())
    assert doc["edits"]["voxels_added"] == int(candidate.sum()) + 1  # it, and the painted voxel

    # the operating point moves: it stays, so does the edit
    point = round((float(own.triage.scores[dropped]) + 0.5) / 2, 3)
    control.spin.setValue(point)
    qtbot.waitUntil(lambda: widget.session.operating_point("student") == point, timeout=5000)
    mask = widget.layer("mask", "student")
    assert np.array_equal(mask.data == 2, candidate) and mask.data[z, y, x] == EDIT_LABEL
    assert table.rowCount() == 2

    # Ctrl+Z on the mask: the accepted voxels go, the earlier edit stays
    mask.undo()
    assert not (mask.data[candidate]).any() and mask.data[z, y, x] == EDIT_LABEL
    mask.redo()
    assert np.array_equal(mask.data == 2, candidate)


@pytest.mark.gui
def test_double_clicking_a_dropped_candidate_accepts_it(make_napari_viewer, triaged):
    from napari.layers import Layer

    from napari_lungkd._napari._qt.widget import LungNodulesWidget
    from napari_lungkd._napari.layers import ct_layer_data

    ct, own = triaged
    viewer = make_napari_viewer()
    viewer.add_layer(Layer.create(*ct_layer_data(ct)))
    widget = LungNodulesWidget(viewer)
    widget._segmented("student", ct, own)
    cands = widget.layer("candidates", "student")
    dropped = int(np.flatnonzero(~cands.features["kept"])[0])
    cands.visible = True
    viewer.dims.set_current_step(0, int(round(cands.data[dropped][0])))
    event = SimpleNamespace(
        position=cands.data_to_world(cands.data[dropped]),
        view_direction=None,
        dims_displayed=list(viewer.dims.displayed),
    )
    for callback in cands.mouse_double_click_callbacks:
        if getattr(callback, "_lungkd_accept", False):
            callback(cands, event)
    assert hand_labels(widget.session.results["student"]) == [2]
    assert widget.nodule_table.rowCount() == 2
