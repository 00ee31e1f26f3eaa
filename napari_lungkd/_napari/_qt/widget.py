"""The "Lung nodules (KD)" dock widget: segment, compare with the teacher, score against LIDC, save.

Thin by design: each button reads the controls, calls one core function (in a thread worker for
the long ones, see :mod:`workers`) and turns the result into layers and tables
(:mod:`result_layers`, :mod:`nodule_table`). The panels are in their own files; the LIDC and
save/load flows in :mod:`lidc_flow` and :mod:`mask_flow`.
"""

from __future__ import annotations

from pathlib import Path

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
from napari_lungkd._napari._qt.workers import describe_error, start_job


def _window_presets() -> dict[str, tuple[float, float]]:
    """name -> (contrast min, contrast max) in HU, from the core's window presets."""
    from napari_lungkd import windowing

    return {name: tuple(windowing.contrast_limits(name)) for name in windowing.PRESETS}


class LungNodulesWidget(QWidget):
    """Dock widget; ``weights`` maps a model name to a weights file (else resolve_weights finds one)."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.weights: dict[str, Path] = {}
        self.batch_size: int | None = None
        self.results: dict[str, object] = {}  # model name -> Segmentation, for the current CT
        self.result_ct = None
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
        self.viewer.layers.events.inserted.connect(self._refresh_ct_choices)
        self.viewer.layers.events.removed.connect(self._refresh_ct_choices)
        self._refresh_ct_choices()

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
        if names == [combo.itemText(i) for i in range(combo.count())]:
            return
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(names)
        if current in names:
            combo.setCurrentText(current)
        combo.blockSignals(False)
        if combo.currentText() != current:
            self._ct_changed(combo.currentText())

    def ct_layer(self):
        name = self.segment_panel.ct_combo.currentText()
        return self.viewer.layers[name] if name and name in self.viewer.layers else None

    def ct(self):
        layer = self.ct_layer()
        return None if layer is None else layer.metadata["lungkd_ct"]

    def _ct_changed(self, name: str) -> None:
        ct = self.ct()
        if ct is None:
            return
        self.apply_window(self.segment_panel.window_combo.currentText())
        self.lidc.find_for_ct(ct)

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
        from napari_lungkd.inference.segmenter import iter_segment

        if self.job is not None and self.job.is_running:
            show_info("A segmentation is already running; cancel it first.")
            return
        ct = self.ct()
        if ct is None:
            show_error(
                "Open a chest CT first (File > Open, or the sample): no CT layer to segment."
            )
            return
        sp = self.segment_panel
        model = model or sp.model_combo.currentText()
        prepared = None
        if self.result_ct is ct and self.results:
            prepared = getattr(next(iter(self.results.values())), "prepared", None)
        try:
            gen = iter_segment(
                ct,
                model=model,
                device=sp.device_combo.currentText(),
                threshold=float(sp.threshold.value()),
                weights=self.weights.get(model),
                batch_size=self.batch_size,
                prepared=prepared,
                backend=sp.backend,
            )
        except Exception as exc:  # noqa: BLE001 - bad settings: one sentence, no traceback
            show_error(describe_error(exc))
            return
        sp.set_running(True, f"{model}: starting")
        self.job = start_job(
            gen,
            on_progress=sp.show_progress,
            on_done=lambda seg, m=model, c=ct: self._segmented(m, c, seg),
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
            if self.compare_panel.teacher_check.isChecked() and "teacher" not in self.results:
                self.compare_panel.teacher_check.blockSignals(True)
                self.compare_panel.teacher_check.setChecked(False)
                self.compare_panel.teacher_check.blockSignals(False)
        elif (
            job.state == "failed"
            and self.compare_panel.teacher_check.isChecked()
            and "teacher" not in self.results
        ):
            self.compare_panel.teacher_check.setChecked(False)
        if self.job is job:
            self.job = None

    def _segmented(self, model: str, ct, seg) -> None:
        ct_layer = self.ct_layer()
        if ct_layer is None or ct_layer.metadata.get("lungkd_ct") is not ct:
            show_info(f"The {model} result was dropped: its CT is no longer the chosen layer.")
            self.segment_panel.show_finished("done (CT changed; result dropped)")
            return
        if self.result_ct is not ct:
            self.results = {}
            self.result_ct = ct
        self.results[model] = seg
        rl.show_segmentation(self.viewer, ct_layer, model, seg)
        self.viewer.layers.selection.active = self.viewer.layers[rl.mask_layer_name(model)]
        if model != "teacher" or "student" not in self.results:
            self.nodule_table.set_nodules(seg.nodules, ct_layer.scale, ct_layer.translate)
        sps = seg.timings.get("slices_per_s") if isinstance(seg.timings, dict) else None
        rate = f", {sps:.1f} slices/s" if isinstance(sps, (int, float)) else ""
        n = len(seg.nodules)
        self.segment_panel.show_finished(f"done: {model}, {n} nodule{'s' if n != 1 else ''}{rate}")
        self.refresh_comparison()
        self.lidc.refresh_scores()
        if (
            model == "student"
            and self.compare_panel.teacher_check.isChecked()
            and "teacher" not in self.results
        ):
            self.segment("teacher")

    # ---- teacher comparison --------------------------------------------------------------
    def set_teacher(self, on: bool) -> None:
        """Run (or drop) the teacher beside the student: both masks, disagreement, numbers."""
        self.compare_panel.grid_check.setEnabled(on)
        if not on:
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
            self.results.pop("teacher", None)
            self.refresh_comparison()
            self.lidc.refresh_scores()
            return
        if self.result_ct is not self.ct() or "student" not in self.results:
            self.segment("student")  # the teacher follows when the student is done
        elif "teacher" not in self.results:
            self.segment("teacher")

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
        for model in self.results:
            name = rl.mask_layer_name(model)
            if name in self.viewer.layers:
                out[model] = self.viewer.layers[name].data
        return out

    def refresh_comparison(self) -> None:
        from napari_lungkd.scoring.comparison import compare_models, disagreement_labels

        ct_layer = self.ct_layer()
        if not self.results or ct_layer is None:
            self.compare_panel.show_rows([])
            return
        ordered = {m: self.results[m] for m in ("student", "teacher") if m in self.results}
        try:
            comp = compare_models(ordered)
        except Exception as exc:  # noqa: BLE001
            show_error(describe_error(exc))
            return
        self.compare_panel.show_rows(comp.rows())
        if len(ordered) == 2:
            masks = self.model_masks()
            rl.show_disagreement(
                self.viewer, ct_layer, disagreement_labels(masks["student"], masks["teacher"])
            )
