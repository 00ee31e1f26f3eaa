"""The nodule table: one row per found nodule; clicking a row takes the viewer to it.

The jump works in *world* coordinates (the CT layer's scale and translate), so the viewer lands on
the nodule's centre slice whatever the spacing, and the camera centres and zooms on it (in grid
mode, for the size of one cell: see :mod:`framing`).
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from napari_lungkd._napari.framing import frame_box

COLUMNS = ("#", "volume mm³", "diameter mm", "slices", "max prob")


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
        """Fill the table; when the nodules carry a ``score`` (the false-positive stage's nodule
        probability) it gets a column and the rows are ranked by it, most likely first."""
        nodules = list(nodules)
        scored = any(getattr(n, "score", None) is not None for n in nodules)
        if scored:
            nodules.sort(key=lambda n: -float(getattr(n, "score", None) or 0.0))
        self.nodules = nodules
        self.scale, self.translate = tuple(scale), tuple(translate)
        columns = COLUMNS + (("score",) if scored else ())
        self.setColumnCount(len(columns))
        self.setHorizontalHeaderLabels(columns)
        self.setRowCount(len(self.nodules))
        for row, n in enumerate(self.nodules):
            cells = (
                str(getattr(n, "label", row + 1)),
                _fmt(n.volume_mm3, 1),
                _fmt(n.diameter_mm, 1),
                str(int(n.n_slices)),
                _fmt(n.max_probability, 2),
            ) + ((_fmt(getattr(n, "score", None), 2),) if scored else ())
            for col, text in enumerate(cells):
                self.setItem(row, col, QTableWidgetItem(text))

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
