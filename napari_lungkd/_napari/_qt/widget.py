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
from napari_lungkd._napari._qt.operating_point import OperatingPointFlow
from napari_lungkd._napari._qt.save_panel import SavePanel
from napari_lungkd._napari._qt.segment_panel import SegmentPanel
from napari_lungkd._napari._qt.view_panel import ViewPanel
from napari_lungkd._napari._qt.workers import report_error, start_job
from napari_lungkd._napari.layers import CT_KEY, patient_label
from napari_lungkd._napari.patient_view import PatientView
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
        self._following = True  # selecting another patient's layer makes it current
        self._presets = _window_presets()

        self.segment_panel = SegmentPanel(list(self._presets))
        self.view_panel = ViewPanel()
        self.patient_view = PatientView(self.viewer)
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
        layout.addWidget(self.view_panel)
        layout.addWidget(self.tabs, stretch=1)
        self.setLayout(layout)
        self.setMinimumWidth(480)

        self.lidc = LidcFlow(self)
        self.masks = MaskFlow(self)
        self.points = OperatingPointFlow(self)  # the operating point after the run
        sp = self.segment_panel
        sp.segment_button.clicked.connect(lambda: self.segment())
        sp.cancel_button.clicked.connect(self.cancel)
        sp.window_combo.currentTextChanged.connect(self.apply_window)
        sp.ct_combo.currentTextChanged.connect(self._ct_changed)
        self.compare_panel.teacher_check.toggled.connect(self.set_teacher)
        self.compare_panel.grid_check.toggled.connect(self.set_grid)
        self.view_panel.fill_check.toggled.connect(lambda on: rl.set_fill(self.viewer, on))
        self.save_panel.rescore_button.clicked.connect(lambda: self.rescore())
        # the viewer outlives this widget: what is connected to it is disconnected on close
        hooks = [
            (self.viewer.layers.events.inserted, self._layer_inserted),
            (self.viewer.layers.events.removed, self._layers_removed),
            (self.viewer.layers.selection.events.active, self._follow_selection),
        ]
        for emitter, handler in hooks:
            emitter.connect(handler)
        self._hooked = [emitter for emitter, _ in hooks]
        me = weakref.ref(self)
        self.destroyed.connect(lambda *_a, hooked=self._hooked: _disconnect(me(), hooked))
        self._known_names: set[str] = set()
        self._refresh_ct_choices()

    def closeEvent(self, event) -> None:
        self.disconnect_viewer()
        super().closeEvent(event)

    def disconnect_viewer(self) -> None:
        """Disconnect every viewer event hook this widget connected (and cancel its job)."""
        if self.job is not None and self.job.is_running:
            self.job.cancel()
        _disconnect(self, self._hooked)
        if self.patient_view is not None:
            self.patient_view.disconnect()
            self.patient_view = None

    # ---- the CT --------------------------------------------------------------------------
    def ct_layers(self) -> list:
        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Image) and layer.metadata.get("lungkd_role") == "ct"
        ]

    def _refresh_ct_choices(self, event=None) -> None:
        combo = self.segment_panel.ct_combo
        current = combo.currentText()
        names = [layer.name for layer in self.ct_layers()]
        if names != [combo.itemText(i) for i in range(combo.count())]:
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            new = [n for n in names if n not in self._known_names]
            if new and event is not None:  # a CT just opened: it becomes the patient shown
                combo.setCurrentText(new[-1])
            elif current in names:
                combo.setCurrentText(current)
            combo.blockSignals(False)
        self._known_names = set(names)
        self._ct_changed(combo.currentText())

    def _layer_inserted(self, event=None) -> None:
        """A new layer: results and readers (from File > Open or the sample too) as outlines;
        a new CT becomes the patient shown."""
        from napari.layers import Labels

        layer = getattr(event, "value", None)
        if isinstance(layer, Labels) and layer.metadata.get("lungkd_role") in rl.OUTLINED_ROLES:
            rl.outline(layer, self.view_panel.fill_check.isChecked())
        self._refresh_ct_choices(event)

    def _layers_removed(self, event=None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None and layer.metadata.get("lungkd_role") == "ct":
            self.session.forget_ct(layer.metadata.get(CT_KEY))
        self._refresh_ct_choices()

    def _follow_selection(self, event=None) -> None:
        """Selecting any layer of another patient (its CT, a mask...) makes that patient current."""
        active = self.viewer.layers.selection.active
        ct = None if active is None else active.metadata.get(CT_KEY)
        if not self._following or ct is None or ct is self.session.ct:
            self.save_panel.show_target(self.masks.mask_layer())
            return
        for layer in self.ct_layers():
            if layer.metadata.get(CT_KEY) is ct:
                self.segment_panel.ct_combo.setCurrentText(layer.name)
                return

    def ct_layer(self):
        name = self.session.ct_layer_name
        return self.viewer.layers[name] if name and name in self.viewer.layers else None

    def ct(self):
        return self.session.ct

    def layer(self, role: str, model: str | None = None):
        """The current patient's layer with this role (``mask``, ``lidc consensus``...), or None."""
        return rl.find_layer(self.viewer, self.session.ct, role, model)

    def _ct_changed(self, name: str) -> None:
        layer = self.viewer.layers[name] if name and name in self.viewer.layers else None
        ct = None if layer is None else layer.metadata.get(CT_KEY)
        if ct is not self.session.ct and self.compare_panel.grid_check.isChecked():
            self.compare_panel.grid_check.setChecked(False)  # the grid of the patient shown
        if not self.session.set_ct(ct, name or None):
            return
        # another patient: its own results and LIDC come back with it (the session kept them)
        self.patient_view.show(ct)
        self.show_patient()
        if ct is None:
            return
        self.apply_window(self.segment_panel.window_combo.currentText())
        if self.session.lidc is None:
            self.lidc.find_for_ct()

    def show_patient(self) -> None:
        """Table, status line, comparison and LIDC tab for the current patient."""
        session = self.session
        model = session.table_model()
        ct_layer = self.ct_layer()
        if model is not None and ct_layer is not None:
            seg = session.results[model]
            self.nodule_table.set_nodules(seg.nodules, ct_layer.scale, ct_layer.translate)
        else:
            self.nodule_table.clear_nodules()
        self.tabs.setTabText(0, f"Nodules ({model})" if model else "Nodules")
        self.segment_panel.status.setText(session.summary())
        comp = session.model_comparison(self.model_masks()) if session.results else None
        self.compare_panel.show_rows(comp.rows() if comp is not None else [])
        self.lidc.show_scores()
        self.lidc.show_source()
        self.points.refresh()
        self.save_panel.show_target(self.masks.mask_layer())

    def apply_window(self, preset: str) -> None:
        from napari_lungkd._napari.layers import set_window

        layer = self.ct_layer()
        if layer is not None and preset in self._presets:
            set_window(layer, preset)
            copy = self.layer(rl.GRID_CT)
            if copy is not None:
                set_window(copy, preset)

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
            if not self.session.knows(ct):
                show_info(f"The {model} result was dropped: its CT was closed.")
                self.segment_panel.show_finished("done (its CT was closed; result dropped)")
                return
            # another patient's result: kept with its CT, its layers hidden until it is chosen
            owner = next(lyr for lyr in self.ct_layers() if lyr.metadata.get(CT_KEY) is ct)
            shown = self.ct_layer()
            self._following = False  # its new layers get selected: that is not the user's choice
            try:
                self.points.show(owner, model, seg)
                if shown is not None:
                    self.viewer.layers.selection.active = shown
            finally:
                self._following = True
            self.patient_view.show(self.session.ct)
            self.segment_panel.show_finished(
                f"done: {model} result kept with {patient_label(ct)} (choose it to see it)"
            )
            return
        ct_layer = self.ct_layer()
        self.points.show(ct_layer, model, seg)
        self.segment_panel.show_finished(self.session.summary())
        self.refresh_comparison()
        self.lidc.refresh_scores()
        # the student's mask is the one selected (painted on, saved), whichever ran last
        self.viewer.layers.selection.active = self.layer(rl.MASK, self.session.table_model())
        self.show_patient()
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
                self.layer(rl.MASK, "teacher"),
                self.layer(rl.ORIGINAL, "teacher"),
                self.layer(rl.PROBABILITY, "teacher"),
                self.layer(rl.CANDIDATES, "teacher"),
                self.layer(rl.DISAGREEMENT),
            ],
        )
        self.segment_panel.status.setText(self.session.summary())
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
            layer = self.layer(rl.MASK, model)
            if layer is not None:
                out[model] = layer.data
        return out

    def refresh_comparison(self) -> None:
        ct_layer = self.ct_layer()
        try:
            masks = self.model_masks()
            comp = self.session.model_comparison(masks) if ct_layer is not None else None
        except Exception as exc:  # noqa: BLE001 - one sentence in the viewer, traceback in the log
            report_error(exc, "comparing student and teacher")
            return
        self.compare_panel.show_rows(comp.rows() if comp is not None else [])
        if "student" in masks and "teacher" in masks:
            labels = rl.agreement_labels(masks["student"], masks["teacher"])
            rl.show_disagreement(
                self.viewer, ct_layer, labels, fill=self.view_panel.fill_check.isChecked()
            )

    def rescore(self) -> None:
        """Recompute every score from the masks as shown (after the user's edits)."""
        from napari_lungkd.scoring.comparison import edit_summary

        if not self.session.results:
            show_error("Nothing to score yet: segment the CT first.")
            return
        self.refresh_comparison()
        self.lidc.refresh_scores()
        edits = []
        for model, data in self.model_masks().items():
            original = self.layer(rl.ORIGINAL, model)
            if original is not None:
                e = edit_summary(original.data, data)
                edits.append(f"{model} +{e['voxels_added']}/−{e['voxels_removed']} voxels")
        self.save_panel.status.setText("scores recomputed with the edits: " + ", ".join(edits))


def _disconnect(owner, emitters: list) -> None:
    """Disconnect every callback of ``owner`` from the napari event ``emitters``; safe twice."""
    while owner is not None and emitters:
        emitters.pop().disconnect(owner)  # an object (not a callable): all of its methods
