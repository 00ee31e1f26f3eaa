"""The "Lung nodules (KD)" dock widget: segment, compare with the teacher, score against LIDC, save.

Thin by design: the state and its rules live in a Qt-free
:class:`~napari_lungkd._napari.session.Session`; each control here reads the panel, calls one session
method (the long ones in a thread worker, see :mod:`workers`) and turns what comes back into layers
and tables (:mod:`result_layers`, :mod:`nodule_table`). The panels are in their own files; the LIDC
and save/load flows in :mod:`lidc_flow` and :mod:`mask_flow`. Every viewer event hook connected here
is disconnected when the widget is closed or destroyed.
"""

from __future__ import annotations

import weakref

from napari.layers import Image
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from napari_lungkd._napari import result_layers as rl
from napari_lungkd._napari._qt.compare_panel import ComparePanel
from napari_lungkd._napari._qt.lidc_flow import LidcFlow
from napari_lungkd._napari._qt.lidc_panel import LidcPanel
from napari_lungkd._napari._qt.mask_flow import MaskFlow
from napari_lungkd._napari._qt.nodule_table import NoduleTable
from napari_lungkd._napari._qt.save_panel import SavePanel
from napari_lungkd._napari._qt.segment_panel import SegmentPanel
from napari_lungkd._napari._qt.workers import report_error, start_job
from napari_lungkd._napari.session import Session
from napari_lungkd.errors import LungKDError


def _window_presets() -> dict[str, tuple[float, float]]:
    """name -> (contrast min, contrast max) in HU, from the core's window presets."""
    from napari_lungkd import windowing

    return {name: tuple(windowing.contrast_limits(name)) for name in windowing.PRESETS}


class LungNodulesWidget(QWidget):
    """Dock widget over one :class:`Session` (``widget.session``: weights, results, LIDC)."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = Session()
        self.job = None
        self.last_job = None
        self._presets = _window_presets()

        self.segment_panel = SegmentPanel(list(self._presets))
        self.nodule_table = NoduleTable(self.viewer)
        self.compare_panel = ComparePanel()
        self.lidc_panel = LidcPanel()
        self.save_panel = SavePanel()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.nodule_table, "Nodules")
        self.tabs.addTab(self.compare_panel, "Compare")
        self.tabs.addTab(self.lidc_panel, "LIDC")
        self.tabs.addTab(self.save_panel, "Save")
        layout = QVBoxLayout()
        layout.addWidget(self.segment_panel)
        layout.addWidget(self.tabs, stretch=1)
        self.setLayout(layout)
        self.setMinimumWidth(480)

        self.lidc = LidcFlow(self)
        self.masks = MaskFlow(self)
        sp = self.segment_panel
        sp.segment_button.clicked.connect(lambda: self.segment())
        sp.cancel_button.clicked.connect(self.cancel)
        sp.window_combo.currentTextChanged.connect(self.apply_window)
        sp.ct_combo.currentTextChanged.connect(self._ct_changed)
        self.compare_panel.teacher_check.toggled.connect(self.set_teacher)
        self.compare_panel.grid_check.toggled.connect(self.set_grid)
        # the viewer outlives this widget: what is connected to it is disconnected on close
        hooks = [
            (self.viewer.layers.events.inserted, self._refresh_ct_choices),
            (self.viewer.layers.events.removed, self._refresh_ct_choices),
        ]
        for emitter, handler in hooks:
            emitter.connect(handler)
        self._hooked = [emitter for emitter, _ in hooks]
        me = weakref.ref(self)
        self.destroyed.connect(lambda *_a, hooked=self._hooked: _disconnect(me(), hooked))
        self._refresh_ct_choices()

    def closeEvent(self, event) -> None:
        self.disconnect_viewer()
        super().closeEvent(event)

    def disconnect_viewer(self) -> None:
        """Disconnect every viewer event hook this widget connected (and cancel its job)."""
        if self.job is not None and self.job.is_running:
            self.job.cancel()
        _disconnect(self, self._hooked)

    # ---- the CT --------------------------------------------------------------------------
    def ct_layers(self) -> list:
        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Image)
            and "lungkd_ct" in layer.metadata
            and layer.name != rl.GRID_CT_NAME
        ]

    def _refresh_ct_choices(self, event=None) -> None:
        combo = self.segment_panel.ct_combo
        current = combo.currentText()
        names = [layer.name for layer in self.ct_layers()]
        if names != [combo.itemText(i) for i in range(combo.count())]:
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            combo.blockSignals(False)
        self._ct_changed(combo.currentText())

    def ct_layer(self):
        name = self.session.ct_layer_name
        return self.viewer.layers[name] if name and name in self.viewer.layers else None

    def ct(self):
        return self.session.ct

    def _ct_changed(self, name: str) -> None:
        layer = self.viewer.layers[name] if name and name in self.viewer.layers else None
        ct = None if layer is None else layer.metadata.get("lungkd_ct")
        if not self.session.set_ct(ct, name or None):
            return
        # the session dropped the old CT's results and LIDC; its layers stay (they may hold edits)
        self.nodule_table.clear_nodules()
        self.compare_panel.show_rows([])
        self.lidc_panel.show_rows([])
        self.lidc_panel.source.setText("no LIDC annotations loaded")
        if ct is None:
            return
        self.apply_window(self.segment_panel.window_combo.currentText())
        self.lidc.find_for_ct()

    def apply_window(self, preset: str) -> None:
        from napari_lungkd._napari.layers import set_window

        layer = self.ct_layer()
        if layer is not None and preset in self._presets:
            set_window(layer, preset)
            if rl.GRID_CT_NAME in self.viewer.layers:
                set_window(self.viewer.layers[rl.GRID_CT_NAME], preset)

    # ---- running a model -----------------------------------------------------------------
    def segment(self, model: str | None = None) -> None:
        """Run ``model`` (default: the chosen one) on the chosen CT in a thread worker."""
        from napari_lungkd._napari.torch_guard import guard_triton

        guard_triton()  # before the first import of the model code (see torch_guard)
        if self.job is not None and self.job.is_running:
            show_info("A segmentation is already running; cancel it first.")
            return
        sp = self.segment_panel
        model = model or sp.model_combo.currentText()
        try:  # checks the CT and the settings; the model is built in the worker
            gen = self.session.iter_segment(
                model,
                device=sp.device_combo.currentText(),
                backend=sp.backend,
                threshold=float(sp.threshold.value()),
            )
        except LungKDError as exc:
            show_error(str(exc))
            return
        sp.set_running(True, f"{model}: starting")
        self.job = start_job(
            gen,
            on_progress=sp.show_progress,
            on_done=lambda result: self._segmented(*result),
            on_error=lambda msg: sp.show_finished(f"failed: {msg}"),
            on_end=self._job_ended,
        )

    def cancel(self) -> None:
        if self.job is not None and self.job.is_running:
            self.job.cancel()
            self.segment_panel.status.setText("cancelling…")

    def _job_ended(self, job) -> None:
        self.last_job = job
        if job.state == "cancelled":
            self.segment_panel.show_finished("cancelled")
        if job.state in ("cancelled", "failed") and self.session.run_stopped():
            check = self.compare_panel.teacher_check
            check.blockSignals(True)
            check.setChecked(False)
            check.blockSignals(False)
            self.compare_panel.grid_check.setChecked(False)
            self.compare_panel.grid_check.setEnabled(False)
        if self.job is job:
            self.job = None

    def _segmented(self, model: str, ct, seg) -> None:
        if not self.session.add_result(model, ct, seg):
            show_info(f"The {model} result was dropped: its CT is no longer the chosen layer.")
            self.segment_panel.show_finished("done (CT changed; result dropped)")
            return
        ct_layer = self.ct_layer()
        rl.show_segmentation(self.viewer, ct_layer, model, seg)
        self.viewer.layers.selection.active = self.viewer.layers[rl.mask_layer_name(model)]
        if model != "teacher" or "student" not in self.session.results:
            self.nodule_table.set_nodules(seg.nodules, ct_layer.scale, ct_layer.translate)
        sps = seg.timings.slices_per_s
        rate = f", {sps:.1f} slices/s" if isinstance(sps, (int, float)) else ""
        n = len(seg.nodules)
        self.segment_panel.show_finished(f"done: {model}, {n} nodule{'s' if n != 1 else ''}{rate}")
        self.refresh_comparison()
        self.lidc.refresh_scores()
        follow_up = self.session.follow_up()
        if follow_up is not None:
            self.segment(follow_up)

    # ---- teacher comparison --------------------------------------------------------------
    def set_teacher(self, on: bool) -> None:
        """Run (or drop) the teacher beside the student: both masks, disagreement, numbers."""
        self.compare_panel.grid_check.setEnabled(on)
        run = self.session.set_compare(on)
        if on:
            if run is not None:
                self.segment(run)  # the student first: the teacher follows when it is done
            return
        if self.job is not None and self.job.is_running:
            self.cancel()
        self.compare_panel.grid_check.setChecked(False)
        rl.remove_layers(
            self.viewer,
            [
                rl.mask_layer_name("teacher"),
                rl.probability_layer_name("teacher"),
                rl.DISAGREEMENT_NAME,
            ],
        )
        self.refresh_comparison()
        self.lidc.refresh_scores()

    def set_grid(self, on: bool) -> None:
        """Side by side (student | teacher) or back to one view, then frame the chosen nodule
        for the new cell size (the zoom set for the whole canvas is wrong for a half-width cell)."""
        ct_layer = self.ct_layer()
        if ct_layer is not None:
            rl.set_side_by_side(self.viewer, ct_layer, on)
            self.nodule_table.frame()

    def model_masks(self) -> dict:
        """Model name -> the mask as shown now (with the user's edits), for the current CT."""
        out = {}
        for model in self.session.results:
            name = rl.mask_layer_name(model)
            if name in self.viewer.layers:
                out[model] = self.viewer.layers[name].data
        return out

    def refresh_comparison(self) -> None:
        ct_layer = self.ct_layer()
        try:
            comp = self.session.model_comparison() if ct_layer is not None else None
        except Exception as exc:  # noqa: BLE001 - one sentence in the viewer, traceback in the log
            report_error(exc, "comparing student and teacher")
            return
        self.compare_panel.show_rows(comp.rows() if comp is not None else [])
        labels = self.session.disagreement(self.model_masks())
        if labels is not None:
            rl.show_disagreement(self.viewer, ct_layer, labels)


def _disconnect(owner, emitters: list) -> None:
    """Disconnect every callback of ``owner`` from the napari event ``emitters``; safe twice."""
    while owner is not None and emitters:
        emitters.pop().disconnect(owner)  # an object (not a callable): all of its methods
