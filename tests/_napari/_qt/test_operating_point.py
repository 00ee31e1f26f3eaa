"""The operating-point control in a real viewer (Xvfb): moving it after the run changes the mask
layers, the table and the candidates layer in place, keeps the user's edits, and the LIDC tab
shows the detection scores of the field (sensitivity at 1/8..8 false positives per scan).

Uses the shared ``setup`` (the phantom case as DICOM + LIDC XML, a random-weight student; no
classifier, so the score is the U-Net's highest probability in each candidate)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from widget_runs import panel_value, run_and_wait

from napari_lungkd._napari.result_layers import EDIT_LABEL

pytestmark = pytest.mark.gui


def _plain(html: str) -> str:
    """The words of a rich-text label, one space apart."""
    text = re.sub(r"<[^>]+>", " ", html).replace("&nbsp;", " ")
    return " ".join(text.split())


def _point_between(probabilities) -> float:
    """A point (to 0.001) that keeps some candidates and drops others (else drops them all)."""
    p = np.unique(np.round(np.asarray(probabilities, dtype=float), 3))
    gaps = np.flatnonzero(np.diff(p) > 0.002)
    if gaps.size:
        k = gaps[-1]
        return round(float(p[k] + p[k + 1]) / 2, 3)
    return min(round(float(p[-1]) + 0.001, 3), 1.0)


def test_moving_the_control_changes_the_layers_and_the_lidc_tab(setup, qtbot, artifacts):
    viewer, widget, ct_layer, ct = setup
    control = widget.segment_panel.operating_point
    assert widget.session.lidc is not None  # the XML beside the series was found
    assert not control.slider.isEnabled()  # nothing to set before a run
    assert run_and_wait(qtbot, widget).state == "done"

    own = widget.session.run_results["student"]
    run_threshold = own.provenance.threshold
    assert control.slider.isEnabled() and control.value() == pytest.approx(run_threshold, abs=1e-3)
    assert control.info.text().startswith(f"student: {len(own.nodules)} of {len(own.nodules)}")
    mask, original = widget.layer("mask", "student"), widget.layer("model mask", "student")
    cands = widget.layer("candidates", "student")
    assert cands is not None and not cands.visible  # at hand, hidden by default
    assert cands.name == f"{ct.patient_id} · student candidates"
    assert len(cands.data) == len(own.nodules) and cands.features["kept"].all()
    assert np.allclose(cands.scale, ct_layer.scale)

    # the LIDC tab: the field's numbers for this scan, in the text and in the table
    panel = widget.lidc_panel
    text = _plain(panel.detection.text())
    assert not panel.detection.isHidden()
    froc = widget.session.detection_scores()[0].froc
    sens = " ".join(f"{v:.2f}" for v in (*froc.sensitivities, froc.cpm))
    assert f"FP/scan 1/8 1/4 1/2 1 2 4 8 CPM student {sens}" in text
    assert f"student at U-Net max probability ≥ {run_threshold:.3f}" in text
    table = [
        panel_value(panel, f"sensitivity at {r} FP/scan", "student") for r in ("1/8", "1", "8")
    ]
    assert table == pytest.approx([froc.sensitivities[i] for i in (0, 3, 6)], abs=1e-3)
    refs = widget.session.detection_scores()[0].references
    hits, misses = panel_value(panel, "hits", "student"), panel_value(panel, "misses", "student")
    assert hits + misses == refs == 3
    false_before = panel_value(panel, "false marks", "student")

    # an edit by hand, then the control moved: fewer nodules, the edit kept
    edited = mask.data.copy()
    z, y, x = np.argwhere(own.mask == 0)[0]
    edited[z, y, x] = EDIT_LABEL
    mask.data = edited
    point = _point_between([n.max_probability for n in own.nodules])
    n_kept = sum(n.max_probability >= point for n in own.nodules)
    assert n_kept < len(own.nodules)
    control.slider.setValue(round(point * 1000))  # as a drag ends there
    qtbot.waitUntil(
        lambda: widget.session.operating_point("student") == pytest.approx(point), timeout=5000
    )
    shown = widget.session.results["student"]
    assert len(shown.nodules) == n_kept and widget.nodule_table.rowCount() == n_kept
    mask = widget.layer("mask", "student")
    assert mask.data[z, y, x] == EDIT_LABEL  # the hand-painted voxel survived
    kept_labels = [n.label for n in own.nodules if n.max_probability >= point]
    model_part = np.where(mask.data == EDIT_LABEL, 0, mask.data)
    assert np.array_equal(model_part > 0, np.isin(own.mask, kept_labels))
    assert np.array_equal(widget.layer("model mask", "student").data, shown.mask)
    assert original is widget.layer("model mask", "student")  # updated in place, not replaced
    assert widget.layer("candidates", "student") is cands  # in place too: every candidate
    assert len(cands.data) == len(own.nodules) and int(cands.features["kept"].sum()) == n_kept
    assert mask.metadata["lungkd_provenance"]["operating_point_shown"]["threshold"] == point
    text = _plain(panel.detection.text())
    assert f"student at U-Net max probability ≥ {point:.3f}" in text
    assert panel_value(panel, "false marks", "student") <= false_before
    assert panel_value(panel, "operating point", "student") == pytest.approx(point)
    assert control.info.text().startswith(f"student: {n_kept} of {len(own.nodules)}")

    widget.tabs.setCurrentWidget(panel)
    cands.visible = True
    nod = own.nodules[0]
    viewer.dims.set_current_step(0, int(round(nod.centroid_zyx[0])))
    viewer.screenshot(str(artifacts / "widget_operating_point.png"), canvas_only=False)

    # back to the run's own point: the run's own mask again (plus the edit)
    control.spin.setValue(run_threshold)
    qtbot.waitUntil(lambda: len(widget.session.results["student"].nodules) == len(own.nodules))
    mask = widget.layer("mask", "student")
    assert np.array_equal(np.where(mask.data == EDIT_LABEL, 0, mask.data), own.mask)
    assert widget.nodule_table.rowCount() == len(own.nodules)
