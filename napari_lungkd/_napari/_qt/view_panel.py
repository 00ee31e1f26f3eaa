"""How results are drawn: outlines or filled, and the one legend of colours (with what the models
look for)."""

from __future__ import annotations

from qtpy.QtWidgets import QCheckBox, QGroupBox, QLabel, QVBoxLayout

from napari_lungkd._napari.result_layers import LEGEND

SIZE_NOTE = (
    "The models look for lung nodules of about 3–30 mm; a larger mass (a tumour) is mostly "
    "not marked."
)


def _swatch(colour: str) -> str:
    return "".join(f"<span style='color:{c}'>■</span>" for c in colour.split("|"))


def legend_html() -> str:
    """The legend as rich text: one coloured square (two for a pair) per role."""
    items = [f"{_swatch(colour)}&nbsp;{what}" for what, colour in LEGEND]
    return " &nbsp; ".join(items)


class ViewPanel(QGroupBox):
    """[ ] Fill masks, the legend, and the size range the models were made for."""

    def __init__(self, parent=None):
        super().__init__("Show", parent)
        self.fill_check = QCheckBox("Fill masks (default: outlines)")
        self.fill_check.setToolTip(
            "Outlines show the edge a reader judges; filled masks show small marks better"
        )
        self.legend = QLabel(legend_html())
        self.legend.setWordWrap(True)
        self.note = QLabel(SIZE_NOTE)
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #b0b0b0")
        layout = QVBoxLayout()
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(self.fill_check)
        layout.addWidget(self.legend)
        layout.addWidget(self.note)
        self.setLayout(layout)
