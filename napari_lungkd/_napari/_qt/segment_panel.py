"""The top of the dock widget: which CT, how to show it, which model, and the Segment button.

Only controls live here; :class:`~napari_lungkd._napari._qt.widget.LungNodulesWidget` reads them and
runs the work. The progress bar shows the current stage and slices per second. The operating
point (:mod:`operating_point`) sets which candidates are shown as nodules after the run.
"""

from __future__ import annotations

from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from napari_lungkd._napari._qt.operating_point import OperatingPointControl
from napari_lungkd.progress import Progress

MODELS = ("student", "teacher")
ENGINES = {"PyTorch": "eager", "ONNX Runtime (CPU)": "onnx"}
"""Engine label shown -> ``iter_segment`` backend."""


def available_engines() -> list[str]:
    """PyTorch always; ONNX Runtime where ``onnxruntime`` and ``onnx`` are installed."""
    from napari_lungkd.inference.onnx_runner import onnx_available

    has_onnx = onnx_available()
    return [label for label, backend in ENGINES.items() if backend == "eager" or has_onnx]


def available_devices() -> list[str]:
    """``auto`` plus every device torch can use on this machine (cuda, mps, cpu)."""
    import torch

    devices = ["auto"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    devices.append("cpu")
    return devices


class SegmentPanel(QGroupBox):
    """CT layer, window preset, model, device, threshold, Segment / Cancel, progress, and the
    operating point of the result shown."""

    def __init__(self, window_presets: list[str], parent=None):
        super().__init__("Segment", parent)
        form = QFormLayout()
        self.ct_combo = QComboBox()
        self.ct_combo.setToolTip("The CT image layer to segment")
        self.window_combo = QComboBox()
        self.window_combo.addItems(window_presets)
        self.window_combo.setToolTip("Window / level preset applied to the CT layer")
        self.model_combo = QComboBox()
        self.model_combo.addItems(MODELS)
        self.model_combo.setToolTip("student: ResNet-18 U-Net (fast); teacher: ResNet-152 U-Net")
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.engine_combo = QComboBox()
        self.engine_combo.addItems(available_engines())
        self.engine_combo.setToolTip(
            "PyTorch runs on any device; ONNX Runtime runs on the CPU only, ~15 % faster per CT "
            "there (its first run exports the model once, a few seconds for the student)"
        )
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.01, 0.99)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setValue(0.5)
        self.threshold.setToolTip("Probability above which a voxel is called nodule")
        form.addRow("CT layer", self.ct_combo)
        form.addRow("Window", self.window_combo)
        form.addRow("Model", self.model_combo)
        form.addRow("Device", self.device_combo)
        form.addRow("Engine", self.engine_combo)
        form.addRow("Threshold", self.threshold)
        self.operating_point = OperatingPointControl()

        buttons = QHBoxLayout()
        self.segment_button = QPushButton("Segment")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.segment_button)
        buttons.addWidget(self.cancel_button)

        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("idle")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        # room for two lines: a wrapped label in a squeezed dock is otherwise cut off
        self.status.setMinimumHeight(2 * self.status.fontMetrics().lineSpacing() + 4)

        layout = QVBoxLayout()
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        point_form = QFormLayout()
        point_form.addRow("Operating point", self.operating_point)
        layout.addLayout(point_form)
        self.setLayout(layout)

    @property
    def backend(self) -> str:
        """The chosen engine as an ``iter_segment`` backend (``eager`` or ``onnx``)."""
        return ENGINES.get(self.engine_combo.currentText(), "eager")

    # --- state shown to the user ---
    def set_running(self, running: bool, what: str = "") -> None:
        self.segment_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if running:
            self.progress_bar.setRange(0, 0)  # busy until the first Progress arrives
            self.progress_bar.setFormat(what or "starting")
            self.status.setText(what)

    def show_progress(self, p: Progress) -> None:
        """Stage, count and the core's own detail (the model stage reports slices/s)."""
        total = max(int(p.total), 1)
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(min(int(p.done), total))
        detail = f" — {p.detail}" if p.detail else ""
        self.progress_bar.setFormat(f"{p.stage} {p.done}/{p.total}{detail}")
        self.status.setText(f"{p.stage}{detail}")

    def show_finished(self, text: str) -> None:
        """The bar says how it ended in one word; the line below says the rest (once)."""
        self.set_running(False)
        self.progress_bar.setRange(0, 1)
        done = text.startswith("done")
        self.progress_bar.setValue(1 if done else 0)
        self.progress_bar.setFormat(text.split(":", 1)[0].split(" (", 1)[0])
        self.status.setText(text)
