"""Faster ways to run the same model on a CPU, kept only where the masks agree with eager fp32.

Backends (``RunSettings(backend=...)``):

* ``eager`` (default): PyTorch, channels-last memory, ``torch.inference_mode``; mixed precision on
  GPUs (:class:`~napari_lungkd.inference.torch_runner.BatchRunner`);
* ``onnx``: the model exported once to ONNX (opset 17, dynamic batch and image size) and run with
  ONNX Runtime's CPU provider, which fuses convolution + batch-norm + ReLU and uses its own NHWC
  kernels. The exported file is cached in the user cache, keyed by the weights' content hash, so
  only the first run pays for the export (seconds for the student, ~40 s for the teacher).

``bench/inference.py`` measures each path beside eager fp32 on LIDC-IDRI-0001 and checks that the
masks agree (Dice >= 0.99, :func:`napari_lungkd.scoring.metrics.dice`).

Measured on the 2-core AVX2 CPU (single thread, CPU ms per slice of a 288 x 352 lung crop, batch 4;
student / teacher): eager NCHW 479 / 1759, eager channels-last 445 / 1731, ONNX Runtime 410 / 1501.
Tried and not kept: ``torch.compile`` (inductor) 473 ms for the student after a 109 s compile
(4 %, and minutes more for the teacher); ONNX Runtime static int8 (QDQ, per-channel) 457 ms vs
474 ms fp32 - no gain without VNNI - with a mask Dice of 0.996 vs fp32; OpenVINO 2026.4 on the
same ONNX file, 2 threads: 206 vs 218 ms per 288 x 384 slice for ONNX Runtime (6 %, not worth a
dependency). The whole-CT numbers are in docs/bench/.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from napari_lungkd.errors import ModelError

ONNX_OPSET = 17


def onnx_available() -> bool:
    """Whether onnx and onnxruntime are installed (looked up, not imported: cheap enough for a
    widget to ask when it is built)."""
    from importlib.util import find_spec

    return find_spec("onnx") is not None and find_spec("onnxruntime") is not None


def export_onnx(loaded, path=None) -> Path:
    """Export ``loaded.module`` to ONNX (cached); returns the file.

    The cache key is the weights file's SHA-256 when the model came from a file (so a cached
    export is found without building the torch module: the file was checked tensor by tensor
    when that export was made), else the hash of the module's tensors (random weights)."""
    import torch

    from napari_lungkd.files import atomic_path
    from napari_lungkd.models.weights import cache_dir, tensors_sha256

    if path is None:
        if loaded.weights_sha256:
            key = "w" + loaded.weights_sha256[:16]
        else:
            key = tensors_sha256(loaded.module.state_dict())[:16]
        path = (
            cache_dir()
            / "onnx"
            / f"{loaded.spec.name}-{loaded.spec.encoder}-{key}-torch{torch.__version__.split('+')[0]}.onnx"
        )
    path = Path(path)
    if path.is_file():
        return path
    module = loaded.module.to("cpu", memory_format=torch.contiguous_format).eval()
    example = torch.zeros(1, loaded.spec.in_channels, 64, 64)
    dyn = {0: "batch", 2: "height", 3: "width"}
    with atomic_path(path) as tmp, torch.inference_mode(False), torch.no_grad():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                example,
                str(tmp),
                input_names=["x"],
                output_names=["logits"],
                dynamic_axes={"x": dyn, "logits": dyn},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
    return path


class OnnxRunner:
    """A :class:`~napari_lungkd.inference.runner.Runner` on ONNX Runtime (CPU): the session is made
    once, here, and reused for every batch and every CT."""

    def __init__(self, loaded, device, batch_size: int | None = None, threads: int | None = None):
        import onnxruntime as ort
        import torch

        if torch.device(device).type != "cpu":
            raise ModelError(
                f"The onnx backend runs on the CPU only, not on {device}; use backend='eager' there."
            )
        self.loaded = loaded
        self.device = torch.device("cpu")
        self.batch_size = int(batch_size or 4)
        self.warnings: list[str] = []
        t0 = time.perf_counter()
        self.path = export_onnx(loaded)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        # idle worker threads sleep instead of spinning: on a shared or busy CPU spinning only
        # burns cycles that the other threads (and the viewer) need
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(self.path), opts, providers=["CPUExecutionProvider"]
        )
        self.setup_seconds = time.perf_counter() - t0

    precision = "fp32"

    def predict(self, x: np.ndarray) -> np.ndarray:
        outs = []
        for i in range(0, len(x), self.batch_size):
            logits = self.session.run(
                None, {"x": np.ascontiguousarray(x[i : i + self.batch_size])}
            )[0]
            outs.append(1.0 / (1.0 + np.exp(-logits[:, 0].astype(np.float32))))
        return np.concatenate(outs) if outs else np.zeros((0, *x.shape[2:]), np.float32)
