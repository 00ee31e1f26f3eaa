"""Save / load controls for the (corrected) nodule mask."""

from __future__ import annotations

from qtpy.QtWidgets import QCheckBox, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout


class SavePanel(QGroupBox):
    """Save mask (NIfTI, optional NRRD, DICOM-SEG for DICOM CTs, JSON sidecar) and Load mask."""

    def __init__(self, parent=None):
        super().__init__("Correct and save", parent)
        self.hint = QLabel(
            "Paint or erase on the mask layer with napari's brush (P) and eraser (E): painted "
            "voxels show in cyan. Recompute the scores, then save: the corrected mask and the "
            "model's own are both written, to a results folder outside the CT's source folder."
        )
        self.hint.setWordWrap(True)
        self.target = QLabel("Will save: no mask yet")
        self.target.setWordWrap(True)
        self.rescore_button = QPushButton("Recompute scores")
        self.rescore_button.setToolTip(
            "Score the masks as shown (with your edits) against each other and the LIDC readers"
        )
        self.nrrd_check = QCheckBox("also NRRD")
        self.seg_check = QCheckBox("DICOM-SEG")
        self.seg_check.setChecked(True)
        self.seg_check.setToolTip(
            "Written when the CT came from a DICOM series; references its slices"
        )
        self.save_button = QPushButton("Save mask…")
        self.load_button = QPushButton("Load mask…")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        opts = QHBoxLayout()
        opts.addWidget(self.nrrd_check)
        opts.addWidget(self.seg_check)
        buttons = QHBoxLayout()
        buttons.addWidget(self.rescore_button)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.load_button)
        layout = QVBoxLayout()
        layout.addWidget(self.hint)
        layout.addWidget(self.target)
        layout.addLayout(opts)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.setLayout(layout)

    def show_target(self, layer) -> None:
        """Say which layer Save will write."""
        self.target.setText(
            f"Will save: <b>{layer.name}</b>" if layer is not None else "Will save: no mask yet"
        )
