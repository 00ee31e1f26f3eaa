"""The nodule table's ranking and its plausibility column: the order as a pure function, then the
table in the docked widget of a real viewer (Xvfb) with measured synthetic shapes, screenshot."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from napari_lungkd._napari._qt.nodule_table import rank

CT_SPACING = (2.5, 0.7, 0.7)


def fake(label, flag="", score=None):
    return SimpleNamespace(label=label, flag=flag, score=score)


def test_rank_by_score_then_plausibility_and_without_score_plausible_first():
    rows = [fake(1, "elongated", 0.9), fake(2, "", 0.9), fake(3, "", 0.2), fake(4, "", None)]
    ordered, scored = rank(rows + [fake(5, "", math.nan)])
    assert scored
    # best score first; among equal scores the plausible row first; no score (None, NaN) last
    assert [r.label for r in ordered] == [2, 1, 3, 4, 5]
    ordered, scored = rank([fake(1, "< 3 mm"), fake(2), fake(3, "1 slice"), fake(4)])
    assert not scored
    assert [r.label for r in ordered] == [2, 4, 1, 3]  # flagged last, else as given (largest first)
    ordered, scored = rank([fake(1, score=math.nan), fake(2, "flat", math.nan)])
    assert not scored and [r.label for r in ordered] == [1, 2]  # all NaN: no score column


def shapes():
    """A CT-like mask (2.5 x 0.7 x 0.7 mm) holding a nodule, a vessel, a streak on one slice and a
    speck, measured by the one nodule definition."""
    from napari_lungkd.inference.nodules import label_nodules

    shape = (24, 160, 160)
    zz, yy, xx = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    z, y, x = (zz - 12) * 2.5, yy * 0.7, xx * 0.7
    mask = (z**2 + (y - 28) ** 2 + (x - 28) ** 2) <= 6.0**2  # a 12 mm nodule
    mask |= (z**2 + (y - 80) ** 2 <= 3.0**2) & (np.abs(x - 40) <= 12)  # a vessel, 24 mm long
    mask |= (zz == 6) & (np.abs(y - 28) <= 2) & (np.abs(x - 80) <= 14)  # 28 mm on one slice
    mask |= (z**2 + (y - 90) ** 2 + (x - 90) ** 2) <= 1.0**2  # a speck, under 3 mm
    return label_nodules(mask, CT_SPACING, hu=np.where(mask, 40, -850).astype(np.int16))


@pytest.mark.gui
def test_the_widget_table_shows_flags_ranks_them_last_and_greys_them(
    make_napari_viewer, qtbot, artifacts
):
    from dataclasses import replace

    from napari_lungkd._napari._qt.widget import LungNodulesWidget

    nodules, labels = shapes()
    flags = {n.label: n.flag for n in nodules}
    assert sorted(flags.values()) == ["", "1 slice; elongated", "< 3 mm", "elongated"]
    viewer = make_napari_viewer()
    hu = np.where(labels > 0, 40, -850).astype(np.int16)
    viewer.add_image(hu, scale=CT_SPACING, name="CT", contrast_limits=(-1000, 400))
    viewer.add_labels(labels, scale=CT_SPACING, name="nodules")
    widget = LungNodulesWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Lung nodules (KD)", area="right")
    viewer.window._qt_window.resize(1500, 950)
    table = widget.nodule_table
    table.set_nodules(nodules, CT_SPACING, (0, 0, 0))
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers[-1] == "flag" and "score" not in headers
    shown = [table.item(r, headers.index("flag")).text() for r in range(table.rowCount())]
    assert shown[0] == "" and all(shown[1:])  # the plausible nodule first, flagged rows after
    assert table.item(1, 0).foreground().color().getRgb()[:3] == (150, 150, 150)
    assert "elongated" in table.horizontalHeaderItem(len(headers) - 1).toolTip()
    # the jump still goes to the row's own nodule
    table.jump_to(1)
    assert viewer.dims.current_step[0] == int(round(table.nodules[1].centroid_zyx[0]))
    viewer.screenshot(str(artifacts / "nodule_table_flags.png"), canvas_only=False)

    # with the classifier's scores: ranked by score, the flag column still last
    scores = {n.label: s for n, s in zip(nodules, (0.2, 0.9, 0.9, 0.5))}
    scored = [replace(n, score=scores[n.label]) for n in nodules]
    table.set_nodules(scored, CT_SPACING, (0, 0, 0))
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers[-2:] == ["score", "flag"]
    got = [float(table.item(r, headers.index("score")).text()) for r in range(table.rowCount())]
    assert got == sorted(got, reverse=True)
    ties = [table.item(r, headers.index("flag")).text() for r in range(2)]
    assert ties == sorted(ties, key=bool)  # of two rows at 0.9 the plausible one (if any) first
    viewer.screenshot(str(artifacts / "nodule_table_scores.png"), canvas_only=False)
