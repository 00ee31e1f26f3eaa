"""The nodule table: one row per found nodule; clicking a row takes the viewer to it.

Rows are ranked by the false-positive classifier's score when the nodules carry one (most likely
first), plausible rows before flagged ones among equal scores; without a score, plausible rows
first, largest first. The "flag" column says why a row is implausible as a nodule
(:func:`~napari_lungkd.inference.plausibility.plausibility`: "1 slice", "elongated", "> 30 mm
(mass)", "< 3 mm"); flagged rows are greyed, not hidden.

The jump works in *world* coordinates (the CT layer's scale and translate), so the viewer lands on
the nodule's centre slice whatever the spacing, and the camera centres and zooms on it (in grid
mode, for the size of one cell: see :mod:`framing`).
"""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from napari_lungkd._napari.framing import frame_box
from napari_lungkd.inference.plausibility import (
    ELONGATED_BELOW,
    FLAT_BELOW,
    MAX_DIAMETER_MM,
    MIN_DIAMETER_MM,
)

COLUMNS = ("#", "volume mm³", "diameter mm", "slices", "max prob")
FLAG_TIP = (
    "Why this row is implausible as a nodule (it is kept; you decide): "
    f"< {MIN_DIAMETER_MM:g} mm (smaller than LIDC readers outline), "
    f"> {MAX_DIAMETER_MM:g} mm (a mass), "
    f"1 slice / flat (about 3x wider than thick, flatness < {FLAT_BELOW:g}), "
    f"elongated (about 3x longer than wide, elongation < {ELONGATED_BELOW:g}: a vessel)"
)
_FLAGGED_GREY = QColor(150, 150, 150)


def _score(nodule) -> float | None:
    """The classifier's score of ``nodule``; None when absent or NaN."""
    value = getattr(nodule, "score", None)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _flag(nodule) -> str:
    return str(getattr(nodule, "flag", "") or "")


def rank(nodules) -> tuple[list, bool]:
    """``(rows, scored)``: the nodules in table order (see the module doc) and whether any has a
    score. The sort is stable: the incoming order (largest first) breaks the remaining ties."""
    nodules = list(nodules)
    scored = any(_score(n) is not None for n in nodules)

    def key(n):
        flagged = bool(_flag(n))
        if not scored:
            return (flagged,)
        score = _score(n)
        return (-score if score is not None else math.inf, flagged)

    return sorted(nodules, key=key), scored


def _fmt(value, nd: int) -> str:
    if value is None:
        return "–"
    try:
        return f"{float(value):.{nd}f}"
    except (TypeError, ValueError):
        return str(value)


def nodule_world_box(nodule, scale, translate) -> tuple[np.ndarray, np.ndarray]:
    """(centre, extent) of a nodule in napari world coordinates (z, y, x), from its voxel facts."""
    scale = np.asarray(scale, dtype=float)[-3:]
    translate = np.asarray(translate, dtype=float)[-3:]
    centre_idx = np.asarray(nodule.centroid_zyx, dtype=float)
    bbox = np.asarray(nodule.bbox, dtype=float).reshape(-1)
    if bbox.size == 6:  # (z0, y0, x0, z1, y1, x1), end exclusive as scipy/skimage give it
        extent = (bbox[3:] - bbox[:3]) * scale
    else:
        extent = np.full(3, 10.0)
    return translate + centre_idx * scale, np.abs(extent)


class NoduleTable(QTableWidget):
    """Nodules of the shown mask; ``jump_to(row)`` is what a click does."""

    def __init__(self, viewer, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.viewer = viewer
        self.nodules: list = []
        self.scale = (1.0, 1.0, 1.0)
        self.translate = (0.0, 0.0, 0.0)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        self.setToolTip("Click a row to go to that nodule")
        self.cellClicked.connect(lambda row, _col: self.jump_to(row))

    def set_nodules(self, nodules, scale, translate) -> None:
        """Fill the table, ranked (:func:`rank`); a "score" column when the nodules carry the
        false-positive stage's nodule probability, and always the plausibility "flag"."""
        self.clearSelection()  # a selected row would now point at another nodule
        self.nodules, scored = rank(nodules)
        self.scale, self.translate = tuple(scale), tuple(translate)
        columns = COLUMNS + (("score",) if scored else ()) + ("flag",)
        self.setColumnCount(len(columns))
        self.setHorizontalHeaderLabels(columns)
        self.horizontalHeaderItem(len(columns) - 1).setToolTip(FLAG_TIP)
        self.setRowCount(len(self.nodules))
        for row, n in enumerate(self.nodules):
            flag = _flag(n)
            by_hand = str(getattr(n, "added", "") or "")  # an accepted candidate: "added by hand"
            cells = (
                (
                    str(getattr(n, "label", row + 1)) + (" (by hand)" if by_hand else ""),
                    _fmt(n.volume_mm3, 1),
                    _fmt(n.diameter_mm, 1),
                    str(int(n.n_slices)),
                    _fmt(n.max_probability, 2),
                )
                + ((_fmt(_score(n), 2),) if scored else ())
                + (flag,)
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if flag:
                    item.setForeground(QBrush(_FLAGGED_GREY))
                    item.setToolTip(f"Implausible as a nodule: {flag}")
                if by_hand and col == 0:
                    item.setToolTip("A candidate below the operating point, accepted by hand")
                self.setItem(row, col, item)

    def clear_nodules(self) -> None:
        self.set_nodules([], self.scale, self.translate)

    def jump_to(self, row: int) -> None:
        """Show nodule ``row``: its centre slice, the camera centred on it and zoomed to ~8x its size."""
        if not 0 <= row < len(self.nodules):
            return
        centre, _ = nodule_world_box(self.nodules[row], self.scale, self.translate)
        dims = self.viewer.dims
        point = list(dims.point)
        point[-3:] = centre
        dims.point = point
        self.frame(row)
        self.selectRow(row)

    def frame(self, row: int | None = None) -> None:
        """Frame nodule ``row`` (default: the selected one) in each grid cell (or the canvas),
        keeping the slice; with no nodule, fit the whole scene. Call it when the grid changes."""
        if row is None:
            rows = self.selectionModel().selectedRows() if self.selectionModel() else []
            row = rows[0].row() if rows else None
        if row is None or not 0 <= row < len(self.nodules):
            self.viewer.reset_view()
            return
        frame_box(self.viewer, *nodule_world_box(self.nodules[row], self.scale, self.translate))
