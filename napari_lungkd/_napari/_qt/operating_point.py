"""The operating-point control of the Segment panel, and what moving it does to the layers.

The control (:class:`OperatingPointControl`: a slider and a spin box kept together) sets the
score a candidate needs to be shown as a nodule, after the run: the session filters the run's
own result (:meth:`~napari_lungkd._napari.session.Session.set_operating_point`), and
:class:`OperatingPointFlow` updates the mask layers in place (the user's edits carried over), the
hidden candidates layer, the nodule table and every score. The model is not run again.

A candidate the point drops can be accepted by hand (:meth:`OperatingPointFlow.accept`): select
it in the candidates layer and press "Accept selected candidates", or double-click it there. Its
voxels join the editable mask as the next label (one step of that layer's undo, Ctrl+Z; nothing
the user painted or erased is changed), drawn in the edit colour, the table gains its row, and
the provenance saved with the mask lists it as added by hand
(:mod:`~napari_lungkd._napari.accept_candidate`).
"""

from __future__ import annotations

import weakref

import numpy as np
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from napari_lungkd._napari import result_layers as rl
from napari_lungkd._napari.layers import CT_KEY
from napari_lungkd.errors import LungKDError

STEPS = 1000
"""Slider positions over [0, 1]: a point is set to 0.001."""
SETTLE_MS = 150
"""The layers follow the control once it has been still this long (not at every pixel)."""
HOW_TO_ACCEPT = (
    "Show the candidates layer, select grey points (below the operating point) with its select "
    "tool, then press this (or double-click a point): each becomes a new nodule, saved as added "
    "by hand. Ctrl+Z on the mask layer takes its voxels back out."
)


class OperatingPointControl(QWidget):
    """Slider + spin box over [lowest, 1]; :attr:`changed` says the value the user settled on."""

    changed = Signal(float)
    accept_requested = Signal()

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
        self.accept_button = QPushButton("Accept selected candidates")
        self.accept_button.setToolTip(HOW_TO_ACCEPT)
        self.accept_button.clicked.connect(lambda: self.accept_requested.emit())
        layout.addLayout(row)
        layout.addWidget(self.info)
        layout.addWidget(self.accept_button)
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

    def show_point(self, lowest: float, value: float, info: str, dropped: int = 0) -> None:
        """Show a result's range and point (without emitting :attr:`changed`), and whether any
        candidate is ``dropped`` (there is one to accept)."""
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
        self.accept_button.setEnabled(dropped > 0)

    def clear(self, info: str = "segment the CT to set which candidates are shown") -> None:
        self._timer.stop()
        self.slider.setEnabled(False)
        self.spin.setEnabled(False)
        self.accept_button.setEnabled(False)
        self.info.setText(info)


class OperatingPointFlow:
    """Wires the control to the session and puts each result and its candidates into layers."""

    def __init__(self, widget):
        self.w = widget
        self.session = widget.session
        self.control: OperatingPointControl = widget.segment_panel.operating_point
        self.control.changed.connect(self.apply)
        self.control.accept_requested.connect(lambda: self.accept())

    def model(self) -> str | None:
        """The model the control acts on: the one whose nodules the table lists."""
        return self.session.table_model()

    def show(self, ct_layer, model: str, seg, shown=None) -> None:
        """Put ``model``'s result on ``ct_layer``'s CT (mask, own mask, probability, candidates)."""
        from napari_lungkd._napari.accept_candidate import hand_labels, model_view

        session = self.session
        ct = ct_layer.metadata[CT_KEY]
        own = model_view(seg)  # the model's own mask leaves out what was added by hand
        if shown is None and own is not seg:
            shown = rl.as_mask_data(seg.mask)
        mask, _ = rl.show_segmentation(
            self.w.viewer,
            ct_layer,
            model,
            own,
            provenance=session.shown_provenance(model, ct),
            fill=self.w.view_panel.fill_check.isChecked(),
            shown=shown,
        )
        mask.colormap = rl.result_colormap(model, hand_labels(seg))
        scores = session.candidate_scores(model, ct)
        if scores is not None:
            point = session.operating_point(model, ct)
            accepted = [h.candidate for h in session.results_of(ct, "accepted").get(model, ())]
            layer = rl.show_candidates(self.w.viewer, ct_layer, model, scores, point, accepted)
            _accept_on_double_click(layer, self)

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
        self.control.show_point(scores.lowest, point, info, int((~scores.kept(point)).sum()))

    def apply(self, threshold: float) -> None:
        """Show the table model's candidates scoring at least ``threshold`` as its nodules."""
        from napari_lungkd._napari.accept_candidate import shown_base
        from napari_lungkd._napari.operating_point import carry_edits

        w, model = self.w, self.model()
        ct_layer = w.ct_layer()
        if model is None or ct_layer is None:
            return
        before = self.session.results.get(model)
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
            own = layer.metadata["lungkd_model_mask"]  # with what was added by hand, as shown
            own = own if before is None else shown_base(own, before)
            shown = carry_edits(layer.data, own, rl.as_mask_data(seg.mask))
        self.show(ct_layer, model, seg, shown=shown)
        w.refresh_comparison()
        w.lidc.refresh_scores()
        w.show_patient()

    def accept(self, indices=None, model: str | None = None) -> list:
        """Accept ``model``'s candidates ``indices`` (default: those selected in its candidates
        layer) that the point drops as nodules added by hand; returns the nodules added.
        ``model`` defaults to the selected candidates layer's, else the table's."""
        from napari_lungkd._napari.accept_candidate import candidate_voxels, hand_labels

        w, session = self.w, self.session
        model = model or self._active_candidates_model() or self.model()
        ct_layer = w.ct_layer()
        if model is None or ct_layer is None:
            return []
        points = w.layer(rl.CANDIDATES, model)
        if indices is None:
            indices = sorted(points.selected_data) if points is not None else []
        if not indices:
            show_info("No candidate selected. " + HOW_TO_ACCEPT)
            return []
        before = len(getattr(session.results.get(model), "nodules", ()))
        try:
            seg = session.accept_candidates(model, indices)
        except LungKDError as exc:
            show_error(str(exc))
            return []
        if seg is None:
            show_info("The selected candidates are nodules already (kept, or accepted before).")
            return []
        added = list(seg.nodules[before:])
        layer = w.layer(rl.MASK, model)
        if layer is None:  # the mask layer was closed: show the result again
            self.show(ct_layer, model, seg)
        else:  # into the mask as shown, one undo step, the user's own edits left alone
            own = session.run_results[model]
            with layer.block_history():
                for n in added:
                    voxels = candidate_voxels(own, n.candidate)
                    free = np.asarray(layer.data[voxels]) == 0
                    layer.data_setitem(tuple(v[free] for v in voxels), n.label)
            layer.metadata["lungkd_provenance"] = session.shown_provenance(model)
            layer.colormap = rl.result_colormap(model, hand_labels(seg))
            scores, point = session.candidate_scores(model), session.operating_point(model)
            accepted = [h.candidate for h in session.accepted.get(model, ())]
            rl.show_candidates(w.viewer, ct_layer, model, scores, point, accepted)
        w.refresh_comparison()
        w.lidc.refresh_scores()
        w.show_patient()
        labels = ", ".join(str(n.label) for n in added)
        w.segment_panel.status.setText(
            f"{model}: nodule {labels} added by hand ({len(added)} candidate"
            f"{'s' if len(added) != 1 else ''} below the operating point accepted)"
        )
        return added

    def _active_candidates_model(self) -> str | None:
        """The model of the selected layer when it is a candidates layer of this patient."""
        active = self.w.viewer.layers.selection.active
        meta = {} if active is None else active.metadata
        if meta.get(CT_KEY) is self.session.ct and meta.get("lungkd_role") == rl.CANDIDATES:
            return meta.get("lungkd_model")
        return None


def _accept_on_double_click(layer, flow) -> None:
    """Double-clicking a point of the candidates ``layer`` accepts it (once per layer; the layer
    holds the flow weakly: a closed widget leaves nothing behind)."""
    if layer is None or any(
        getattr(cb, "_lungkd_accept", False) for cb in layer.mouse_double_click_callbacks
    ):
        return
    ref = weakref.ref(flow)

    def accept_clicked(layer, event):
        flow = ref()
        index = layer.get_value(
            event.position,
            view_direction=getattr(event, "view_direction", None),
            dims_displayed=getattr(event, "dims_displayed", None),
            world=True,
        )
        if flow is None or index is None:
            return
        try:
            flow.accept([int(index)], layer.metadata.get("lungkd_model"))
        except RuntimeError:  # the widget was closed (its Qt objects are gone): stop listening
            layer.mouse_double_click_callbacks.remove(accept_clicked)

    accept_clicked._lungkd_accept = True
    layer.mouse_double_click_callbacks.append(accept_clicked)
