"""The Runner protocol: what a Segmenter needs from the thing that runs the network.

Two implementations: :class:`~napari_lungkd.inference.torch_runner.BatchRunner` (PyTorch, any
device) and :class:`~napari_lungkd.inference.onnx_runner.OnnxRunner` (ONNX Runtime, CPU).
:func:`make_runner` picks one by backend; a Segmenter can be given another factory (tests use
this to stand in for a GPU).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from napari_lungkd.errors import ModelError
from napari_lungkd.inference.settings import BACKENDS


@runtime_checkable
class Runner(Protocol):
    """Turns a float32 input stack ``(n, C, H, W)`` into probabilities ``(n, H, W)``."""

    batch_size: int
    """Slices per forward pass; may shrink after an out-of-memory retry."""
    device: Any
    """The ``torch.device`` the network runs on now (may fall back to the CPU)."""
    warnings: list[str]
    """What happened while running (out-of-memory retries, fall-backs), in order."""
    setup_seconds: float
    """Seconds spent making the runner (moving the module, exporting, making a session)."""

    @property
    def precision(self) -> str:
        """``fp32``, ``fp16`` or ``bf16``: the arithmetic of the forward pass."""
        ...

    def predict(self, x: np.ndarray) -> np.ndarray: ...


RunnerFactory = Callable[[Any, Any, "int | None", "int | None"], Runner]
"""``factory(loaded_model, torch_device, batch_size, threads) -> Runner``."""


def make_runner(
    loaded,
    device,
    batch_size: int | None = None,
    backend: str = "eager",
    threads: int | None = None,
) -> Runner:
    """The runner for ``backend`` (``eager`` or ``onnx``)."""
    if backend == "eager":
        from napari_lungkd.inference.torch_runner import BatchRunner

        return BatchRunner(loaded, device, batch_size)
    if backend == "onnx":
        from napari_lungkd.inference.onnx_runner import OnnxRunner, onnx_available

        if not onnx_available():
            raise ModelError(
                "The onnx backend needs the onnx and onnxruntime packages (pip install 'napari-lungkd[fast]')."
            )
        return OnnxRunner(loaded, device, batch_size, threads)
    raise ModelError(f"Unknown backend {backend!r}; choose one of {BACKENDS}.")
