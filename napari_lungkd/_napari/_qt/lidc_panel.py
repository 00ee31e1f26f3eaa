"""LIDC controls: open the readers' XML, the agreement level, the detection scores of this scan
(the field's: sensitivity at 1/8..8 false positives per scan, hits, misses, false marks), the
scores table, Export CSV."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from napari_lungkd._napari._qt.compare_panel import make_rows_table, show_rows, table_value
from napari_lungkd._napari.lidc_detection import RULE


class LidcPanel(QGroupBox):
    """Readers' outlines from an LIDC XML, the consensus level, and each model's scores."""

    def __init__(self, parent=None):
        super().__init__("LIDC readers", parent)
        self.open_button = QPushButton("Open LIDC XML…")
        self.level = QDoubleSpinBox()
        self.level.setRange(0.05, 1.0)
        self.level.setSingleStep(0.25)
        self.level.setDecimals(2)
        self.level.setValue(0.5)
        self.level.setToolTip(
            "Consensus: a voxel counts when at least this fraction of the readers who marked the nodule marked it"
        )
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setEnabled(False)
        self.source = QLabel("no LIDC annotations loaded")
        self.source.setWordWrap(True)
        self.detection = QLabel("")
        self.detection.setWordWrap(True)
        self.detection.setTextFormat(Qt.RichText)
        self.detection.setToolTip(RULE)
        self.detection.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.detection.setVisible(False)
        self.table = make_rows_table()
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.export_button)
        level_row = QHBoxLayout()
        level_row.addWidget(QLabel("Consensus agreement level"))
        level_row.addWidget(self.level)
        layout = QVBoxLayout()
        layout.addLayout(buttons)
        layout.addLayout(level_row)
        layout.addWidget(self.source)
        layout.addWidget(self.detection)
        layout.addWidget(self.table)
        self.setLayout(layout)

    def show_rows(self, rows) -> None:
        show_rows(self.table, rows)
        self.export_button.setEnabled(bool(rows))

    def show_detection(self, text: str) -> None:
        self.detection.setText(text)
        self.detection.setVisible(bool(text))

    def value(self, quantity: str, model: str | None = None) -> str | None:
        return table_value(self.table, quantity, model)
