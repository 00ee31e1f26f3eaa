"""Teacher comparison controls and the table of comparison numbers.

The numbers come from :func:`napari_lungkd.scoring.comparison.compare_models`; this file only shows them.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

ROW_COLUMNS = ("quantity", "model", "value")


def make_rows_table() -> QTableWidget:
    table = QTableWidget(0, len(ROW_COLUMNS))
    table.setHorizontalHeaderLabels(ROW_COLUMNS)
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    header = table.horizontalHeader()
    # the quantity takes what is left (elided if need be); model and value are never cut off
    header.setSectionResizeMode(0, QHeaderView.Stretch)
    header.setSectionResizeMode(1, QHeaderView.ResizeToContents)
    header.setSectionResizeMode(2, QHeaderView.ResizeToContents)
    header.setStretchLastSection(False)
    table.setTextElideMode(Qt.ElideMiddle)
    return table


def _text(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def show_rows(table: QTableWidget, rows) -> None:
    """Fill ``table`` with comparison rows (dicts with quantity, model, value, unit)."""
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        unit = row.get("unit") or ""
        cells = (
            str(row.get("quantity", "")),
            str(row.get("model", "")),
            f"{_text(row.get('value'))} {unit}".strip(),
        )
        for c, text in enumerate(cells):
            table.setItem(r, c, QTableWidgetItem(text))


def table_value(table: QTableWidget, quantity: str, model: str | None = None) -> str | None:
    """The shown value (without its unit) of the first row with this quantity (and model)."""
    for r in range(table.rowCount()):
        q, m = table.item(r, 0).text(), table.item(r, 1).text()
        if q == quantity and (model is None or m == model):
            return table.item(r, 2).text().split(" ")[0]
    return None


class ComparePanel(QGroupBox):
    """[x] Compare with teacher, [x] side-by-side grid, and the numbers."""

    def __init__(self, parent=None):
        super().__init__("Student vs teacher", parent)
        self.teacher_check = QCheckBox("Compare with teacher")
        self.teacher_check.setToolTip(
            "Run the teacher (ResNet-152 U-Net) on the same CT, reusing the student's preprocessing"
        )
        self.grid_check = QCheckBox("Side by side (grid)")
        self.grid_check.setEnabled(False)
        self.legend = QLabel(
            "Colours: see the legend above. The disagreement layer (hidden; tick it in the layer "
            "list) marks student only, teacher only and both."
        )
        self.legend.setWordWrap(True)
        self.table = make_rows_table()
        row = QHBoxLayout()
        row.addWidget(self.teacher_check)
        row.addWidget(self.grid_check)
        layout = QVBoxLayout()
        layout.addLayout(row)
        layout.addWidget(self.legend)
        layout.addWidget(self.table)
        self.setLayout(layout)

    def show_rows(self, rows) -> None:
        show_rows(self.table, rows)

    def value(self, quantity: str, model: str | None = None) -> str | None:
        return table_value(self.table, quantity, model)
