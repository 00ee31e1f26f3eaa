"""A model ready to predict: loading it (weights or random), choosing the device, running batches.

:class:`LoadedModel` is what a :class:`~napari_lungkd.inference.segmenter.Segmenter` holds (one per
Segmenter, so the weights are read once). :class:`BatchRunner` (a
:class:`~napari_lungkd.inference.runner.Runner`) turns a float32 input stack
into probabilities on the chosen device: ``torch.inference_mode``, channels-last memory, mixed
precision on GPUs (bf16 where supported, else fp16), and on out-of-memory it halves the batch and
retries, then falls back to the CPU, recording what happened in ``warnings``.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np

from napari_lungkd.errors import ModelError
from napari_lungkd.models.specs import ModelSpec, build_model, count_parameters, get_spec

RANDOM_WEIGHTS = "random"
"""Pass as ``weights`` to get a model with random weights (tests, timing); provenance says so."""
RANDOM_LABEL = "random-init (testing)"


_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


class LoadedModel:
    """A torch module with the spec it expects and where its weights came from.

    The module can be built lazily: :func:`load_model` with ``build=False`` reads and checks the
    weights file but builds the torch module (importing segmentation-models-pytorch, ~2.5 s on a
    small CPU) only when :attr:`module` is first used. The ONNX Runtime backend with an export
    already cached for these weights never needs it.
    """

    def __init__(
        self,
        module,
        spec: ModelSpec,
        weights_sha256: str | None = None,
        weights_path: Path | None = None,
        load_seconds: float = 0.0,
        metadata: dict | None = None,
        warnings: tuple[str, ...] = (),
        state: dict | None = None,
    ):
        if module is None and state is None:
            raise ModelError("A LoadedModel needs a module or the weights to build one.")
        self._module = module
        self._state = state
        self.spec = spec
        self.weights_sha256 = weights_sha256
        """SHA-256 of the weights file; None for random weights."""
        self.weights_path = weights_path
        self.load_seconds = load_seconds
        self.metadata = dict(metadata or {})
        self.warnings = tuple(warnings)

    @property
    def module(self):
        if self._module is None:
            from napari_lungkd.models.weights import load_state_into

            module = build_model(self.spec)
            load_state_into(module, self._state, self.weights_path)
            self._module, self._state = module.eval(), None
        return self._module

    @property
    def is_built(self) -> bool:
        return self._module is not None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def n_parameters(self) -> int:
        if self._module is not None:
            return count_parameters(self._module)
        # the state dict holds parameters and batch-norm buffers; count the parameters
        return int(
            sum(t.numel() for k, t in self._state.items() if not k.endswith(_BUFFER_SUFFIXES))
        )

    @property
    def weights_label(self) -> str:
        return self.weights_sha256 or RANDOM_LABEL


def load_model(
    model: str = "student", weights=None, registry=None, build: bool = True
) -> LoadedModel:
    """Build model ``model`` and load its weights (``weights``: a path, ``"random"``, or None to look
    them up with :func:`~napari_lungkd.models.weights.resolve_weights`).

    ``build=False`` checks the file (hash, spec) but leaves building the torch module (and the
    strict tensor-shape check) to the first use of :attr:`LoadedModel.module`."""
    from napari_lungkd.models.weights import load_weights, resolve_weights

    t0 = time.perf_counter()
    spec = get_spec(model)
    if isinstance(weights, str) and weights == RANDOM_WEIGHTS:
        import torch

        with torch.random.fork_rng(
            devices=[]
        ):  # the same random weights every time, caller's RNG untouched
            torch.manual_seed(0)
            module = build_model(spec)
        return LoadedModel(module, spec, None, None, time.perf_counter() - t0)
    path = resolve_weights(spec.name, weights, registry=registry)
    state, info = load_weights(path, expected_spec=spec)
    file_spec = info.spec.with_(name=spec.name) if info.spec.name != spec.name else info.spec
    loaded = LoadedModel(
        None, file_spec, info.sha256, path, 0.0, info.metadata, info.warnings, state=state
    )
    if build:
        loaded.module  # noqa: B018 - build now (and check every tensor's shape against the model)
    loaded.load_seconds = time.perf_counter() - t0
    return loaded


# ---- devices ---------------------------------------------------------------------------------


def available_devices() -> list[str]:
    """The devices this machine can run on, best first (always ends with ``cpu``)."""
    import torch

    found = []
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found + ["cpu"]


def resolve_device(device: str = "auto"):
    """``auto`` -> CUDA, else MPS, else CPU; an explicit device must exist here (else ModelError)."""
    import torch

    avail = available_devices()
    if device in (None, "", "auto"):
        return torch.device(avail[0])
    if device not in avail:
        raise ModelError(
            f"Device {device!r} is not available on this machine (available: {', '.join(avail)})."
        )
    return torch.device(device)


def cpu_threads() -> int:
    """The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Set torch's intra-op thread count for a block, then restore it."""
    import torch

    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def default_batch_size(device, spec: ModelSpec) -> int:
    if device.type == "cpu":
        return 4
    return 32 if spec.encoder in ("resnet18", "resnet34") else 16


def _is_oom(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    return isinstance(exc, oom) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


class BatchRunner:
    """Runs a :class:`LoadedModel` on float32 stacks ``(n, C, H, W)`` and returns probabilities."""

    def __init__(
        self, loaded: LoadedModel, device, batch_size: int | None = None, channels_last: bool = True
    ):
        import torch

        self.loaded = loaded
        self.device = torch.device(device)
        self.batch_size = int(batch_size or default_batch_size(self.device, loaded.spec))
        self.channels_last = channels_last
        self.warnings: list[str] = []
        t0 = time.perf_counter()
        self._move_module(self.device)
        self.setup_seconds = time.perf_counter() - t0

    def _move_module(self, device) -> None:
        import torch

        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.loaded.module.to(device=device, memory_format=fmt).eval()

    def _place(self, x: np.ndarray):
        import torch

        t = torch.from_numpy(np.ascontiguousarray(x))
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return t.to(device=self.device, memory_format=fmt, non_blocking=self.device.type == "cuda")

    def autocast(self):
        import torch

        if self.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        if self.device.type == "mps":
            return torch.autocast("mps", dtype=torch.float16)
        return contextlib.nullcontext()

    @property
    def precision(self) -> str:
        import torch

        if self.device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp16" if self.device.type == "mps" else "fp32"

    def _free(self) -> None:
        import torch

        if self.device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _forward(self, x: np.ndarray) -> np.ndarray:
        import torch

        outs = []
        with torch.inference_mode(), self.autocast():
            for i in range(0, len(x), self.batch_size):
                logits = self.loaded.module(self._place(x[i : i + self.batch_size]))
                outs.append(torch.sigmoid(logits[:, 0].float()).cpu().numpy())
        return np.concatenate(outs) if outs else np.zeros((0, *x.shape[2:]), np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, H, W)`` float32 for inputs ``(n, C, H, W)``, surviving OOM."""
        while True:
            try:
                return self._forward(x)
            except Exception as exc:
                if not _is_oom(exc):
                    raise
                self._free()
                if self.batch_size > 1:
                    self.batch_size = max(1, self.batch_size // 2)
                    self.warnings.append(
                        f"out of memory on {self.device}; batch size halved to {self.batch_size}"
                    )
                    continue
                if self.device.type != "cpu":
                    import torch

                    self.warnings.append(
                        f"out of memory on {self.device} even at batch size 1; fell back to the CPU"
                    )
                    self.device = torch.device("cpu")
                    self._move_module(self.device)
                    self.batch_size = default_batch_size(self.device, self.loaded.spec)
                    continue
                raise ModelError(
                    f"Model {self.loaded.name!r} ran out of memory on the CPU even one slice at a time."
                ) from exc
