"""The operating-point control of the Segment panel, and what moving it does to the layers.

The control (:class:`OperatingPointControl`: a slider and a spin box kept together) sets the
score a candidate needs to be shown as a nodule, after the run: the session filters the run's
own result (:meth:`~napari_lungkd._napari.session.Session.set_operating_point`), and
:class:`OperatingPointFlow` updates the mask layers in place (the user's edits carried over), the
hidden candidates layer, the nodule table and every score. The model is not run again.
"""

from __future__ import annotations

from napari.utils.notifications import show_error
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from napari_lungkd._napari import result_layers as rl
from napari_lungkd._napari.layers import CT_KEY
from napari_lungkd.errors import LungKDError

STEPS = 1000
"""Slider positions over [0, 1]: a point is set to 0.001."""
SETTLE_MS = 150
"""The layers follow the control once it has been still this long (not at every pixel)."""


class OperatingPointControl(QWidget):
    """Slider + spin box over [lowest, 1]; :attr:`changed` says the value the user settled on."""

    changed = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, STEPS)
        self.spin = QDoubleSpinBox()
        self.spin.setRange(0.0, 1.0)
        self.spin.setDecimals(3)
        self.spin.setSingleStep(0.01)
        self.info = QLabel("segment the CT to set which candidates are shown")
        self.info.setWordWrap(True)
        self.setToolTip(
            "Score a candidate needs to be shown as a nodule (the classifier's nodule "
            "probability, or the U-Net's highest probability inside it without a classifier). "
            "Applied to the result shown in the table without running the model again; the "
            "candidates layer (hidden) holds every candidate with its score."
        )
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.slider, stretch=1)
        row.addWidget(self.spin)
        layout = QVBoxLayout()
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.info)
        self.setLayout(layout)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SETTLE_MS)
        self._timer.timeout.connect(lambda: self.changed.emit(self.value()))
        self.slider.valueChanged.connect(self._slider_moved)
        self.spin.valueChanged.connect(self._spin_changed)
        self.clear()

    def value(self) -> float:
        return round(float(self.spin.value()), 3)

    def _slider_moved(self, position: int) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(max(position / STEPS, self.spin.minimum()))
        self.spin.blockSignals(False)
        self._timer.start()

    def _spin_changed(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round(value * STEPS))
        self.slider.blockSignals(False)
        self._timer.start()

    def show_point(self, lowest: float, value: float, info: str) -> None:
        """Show a result's range and point (without emitting :attr:`changed`)."""
        self._timer.stop()
        for w in (self.slider, self.spin):
            w.blockSignals(True)
        self.spin.setRange(round(lowest, 3), 1.0)
        self.slider.setRange(round(lowest * STEPS), STEPS)
        self.spin.setValue(value)
        self.slider.setValue(round(value * STEPS))
        for w in (self.slider, self.spin):
            w.blockSignals(False)
        self.info.setText(info)
        self.slider.setEnabled(True)
        self.spin.setEnabled(True)

    def clear(self, info: str = "segment the CT to set which candidates are shown") -> None:
        self._timer.stop()
        self.slider.setEnabled(False)
        self.spin.setEnabled(False)
        self.info.setText(info)


class OperatingPointFlow:
    """Wires the control to the session and puts each result and its candidates into layers."""

    def __init__(self, widget):
        self.w = widget
        self.session = widget.session
        self.control: OperatingPointControl = widget.segment_panel.operating_point
        self.control.changed.connect(self.apply)

    def model(self) -> str | None:
        """The model the control acts on: the one whose nodules the table lists."""
        return self.session.table_model()

    def show(self, ct_layer, model: str, seg, shown=None) -> None:
        """Put ``model``'s result on ``ct_layer``'s CT (mask, own mask, probability, candidates)."""
        session = self.session
        ct = ct_layer.metadata[CT_KEY]
        rl.show_segmentation(
            self.w.viewer,
            ct_layer,
            model,
            seg,
            provenance=session.shown_provenance(model, ct),
            fill=self.w.view_panel.fill_check.isChecked(),
            shown=shown,
        )
        scores = session.candidate_scores(model, ct)
        if scores is not None:
            point = session.operating_point(model, ct)
            rl.show_candidates(self.w.viewer, ct_layer, model, scores, point)

    def refresh(self) -> None:
        """The control for the current patient's table model (or disabled without a result)."""
        from napari_lungkd._napari.operating_point import describe

        session, model = self.session, self.model()
        scores = session.candidate_scores(model) if model else None
        if scores is None:
            self.control.clear()
            return
        point = session.operating_point(model)
        info = f"{model}: " + describe(scores, point, session.expected_at(model, point))
        self.control.show_point(scores.lowest, point, info)

    def apply(self, threshold: float) -> None:
        """Show the table model's candidates scoring at least ``threshold`` as its nodules."""
        from napari_lungkd._napari.operating_point import carry_edits

        w, model = self.w, self.model()
        ct_layer = w.ct_layer()
        if model is None or ct_layer is None:
            return
        try:
            seg = self.session.set_operating_point(model, threshold)
        except LungKDError as exc:
            show_error(str(exc))
            return
        if seg is None:  # the same point: nothing changes
            self.refresh()
            return
        layer = w.layer(rl.MASK, model)
        shown = None
        if layer is not None and layer.metadata.get("lungkd_model_mask") is not None:
            own = layer.metadata["lungkd_model_mask"]
            shown = carry_edits(layer.data, own, rl.as_mask_data(seg.mask))
        self.show(ct_layer, model, seg, shown=shown)
        w.refresh_comparison()
        w.lidc.refresh_scores()
        w.show_patient()
