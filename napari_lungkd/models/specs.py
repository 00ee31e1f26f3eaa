"""Model specs (student, teacher, teacher-assistants), how to build them, and their input.

A :class:`ModelSpec` fixes everything a set of weights was trained with and that inference must
repeat: the encoder, the number of context slices (1 = 2-D as in the thesis; 3 or 5 = 2.5-D with
neighbour slices as channels), the HU window and normalisation, the in-plane target spacing (or
None for the CT's own), the decision threshold and the multiple that the input size must be (a
U-Net with a 5-level encoder halves the image five times: 2**5 = 32).

The default preprocessing is a lung window clip to [-1000, 400] HU scaled to [0, 1]: it keeps air,
lung parenchyma, soft tissue and nodules (solid nodules sit at -100..+100 HU, part-solid and
ground-glass at -750..-300) and throws away the bone/metal range, which carries no nodule signal.

``build_model`` imports torch and segmentation-models-pytorch lazily: importing this module is
cheap (no torch), so the widget can list the specs before a model is needed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from napari_lungkd.errors import ModelError

NORMALISATIONS = ("window01", "zscore")


@dataclass(frozen=True)
class ModelSpec:
    """What a model is and what it expects as input (stored inside every weights file)."""

    name: str
    encoder: str
    context_slices: int = 1
    hu_window: tuple[float, float] = (-1000.0, 400.0)
    normalisation: str = "window01"
    """``window01``: clip to ``hu_window`` then scale to [0, 1]; ``zscore``: clip then
    ``(hu - mean_hu) / std_hu``."""
    mean_hu: float = -500.0
    std_hu: float = 500.0
    target_spacing_mm: float | None = None
    """In-plane spacing the model was trained at (None: the CT's own spacing)."""
    threshold: float = 0.5
    size_multiple: int = 32
    classes: int = 1

    def __post_init__(self) -> None:
        _check_numbers(self)
        if self.context_slices < 1 or self.context_slices % 2 == 0:
            raise ModelError(
                f"Model spec {self.name!r} has context_slices={self.context_slices}; it must be odd (1, 3, 5...)."
            )
        if self.normalisation not in NORMALISATIONS:
            raise ModelError(
                f"Model spec {self.name!r} has unknown normalisation {self.normalisation!r} (use one of {NORMALISATIONS})."
            )
        lo, hi = self.hu_window
        if not hi > lo:
            raise ModelError(f"Model spec {self.name!r} has an empty HU window {self.hu_window}.")
        if not 0.0 < self.threshold < 1.0:
            raise ModelError(
                f"Model spec {self.name!r} has threshold {self.threshold}; it must be in (0, 1)."
            )

    @property
    def in_channels(self) -> int:
        return self.context_slices

    def architecture(self) -> dict[str, Any]:
        """The fields that decide the tensor shapes of the weights."""
        return {"encoder": self.encoder, "in_channels": self.in_channels, "classes": self.classes}

    def preprocessing(self) -> dict[str, Any]:
        """The fields that decide the model input; two specs with equal preprocessing share it."""
        return {
            "context_slices": self.context_slices,
            "hu_window": [float(v) for v in self.hu_window],
            "normalisation": self.normalisation,
            "mean_hu": float(self.mean_hu),
            "std_hu": float(self.std_hu),
            "target_spacing_mm": self.target_spacing_mm,
            "size_multiple": self.size_multiple,
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hu_window"] = [float(v) for v in self.hu_window]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelError(f"Model spec has unknown fields {unknown}.")
        d = dict(d)
        if "hu_window" in d:
            d["hu_window"] = tuple(float(v) for v in d["hu_window"])
        return cls(**d)

    def with_(self, **changes) -> ModelSpec:
        return replace(self, **changes)


def _check_numbers(spec: ModelSpec) -> None:
    """Refuse impossible numbers (a weights header can say anything): non-integer counts, a size
    multiple or class count below 1, non-finite HU values, a standard deviation that is not > 0."""
    for key in ("context_slices", "size_multiple", "classes"):
        value = getattr(spec, key)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1024:
            raise ModelError(
                f"Model spec {spec.name!r} has {key}={value!r}; it must be a whole number from 1."
            )
    try:
        numbers = [float(v) for v in (*spec.hu_window, spec.mean_hu, spec.std_hu, spec.threshold)]
    except (TypeError, ValueError):
        raise ModelError(f"Model spec {spec.name!r} has a value that is not a number.") from None
    if len(spec.hu_window) != 2 or not np.isfinite(numbers).all():
        raise ModelError(
            f"Model spec {spec.name!r} has a non-finite HU window, mean, std or threshold."
        )
    if not spec.std_hu > 0:
        raise ModelError(f"Model spec {spec.name!r} has std_hu={spec.std_hu}; it must be > 0.")
    t = spec.target_spacing_mm
    if t is not None and not (isinstance(t, (int, float)) and np.isfinite(t) and t > 0):
        raise ModelError(
            f"Model spec {spec.name!r} has target_spacing_mm={t!r}; it must be None or > 0."
        )


SPECS: dict[str, ModelSpec] = {
    "student": ModelSpec(name="student", encoder="resnet18"),
    "teacher": ModelSpec(name="teacher", encoder="resnet152"),
    # teacher-assistant chain (Mirzadeh et al. 2020): teacher -> assistant -> student
    "assistant34": ModelSpec(name="assistant34", encoder="resnet34"),
    "assistant50": ModelSpec(name="assistant50", encoder="resnet50"),
}
_ALIASES = {
    "resnet18": "student",
    "resnet152": "teacher",
    "resnet34": "assistant34",
    "resnet50": "assistant50",
}


def get_spec(name: str) -> ModelSpec:
    """The spec called ``name`` (``student``, ``teacher``, ``assistant34``/``resnet34``...)."""
    key = _ALIASES.get(name, name)
    if key not in SPECS:
        raise ModelError(f"Unknown model {name!r}; choose one of {sorted(SPECS)}.")
    return SPECS[key]


def build_model(spec: ModelSpec):
    """An smp ``Unet`` for ``spec`` with random weights (no hub download), one output logit."""
    import segmentation_models_pytorch as smp

    try:
        model = smp.Unet(
            encoder_name=spec.encoder,
            encoder_weights=None,
            in_channels=spec.in_channels,
            classes=spec.classes,
        )
    except (KeyError, ValueError) as exc:
        raise ModelError(
            f"Model spec {spec.name!r} names an encoder smp cannot build ({spec.encoder!r}): {exc}"
        ) from exc
    return model.eval()


def count_parameters(model) -> int:
    """Number of parameters of a torch module (trainable or not)."""
    return int(sum(p.numel() for p in model.parameters()))


def normalise_hu(hu: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Clip HU to the spec's window and normalise, as float32 (same shape)."""
    lo, hi = (float(v) for v in spec.hu_window)
    x = np.asarray(hu).astype(np.float32)  # always a fresh array: the caller's HU is never changed
    np.clip(x, lo, hi, out=x)
    if spec.normalisation == "window01":
        x -= lo
        x *= 1.0 / (hi - lo)
    else:
        x -= float(spec.mean_hu)
        x *= 1.0 / float(spec.std_hu)
    return x


def background_value(spec: ModelSpec) -> float:
    """The normalised value of air (the window minimum): what padding is filled with."""
    return float(normalise_hu(np.array([spec.hu_window[0]], dtype=np.float32), spec)[0])


def context_indices(indices: np.ndarray, n_slices: int, context_slices: int) -> np.ndarray:
    """``(n, context_slices)`` slice indices around each index, edge-replicated at the ends."""
    half = context_slices // 2
    offsets = np.arange(-half, half + 1)
    return np.clip(np.asarray(indices)[:, None] + offsets[None, :], 0, n_slices - 1)


def preprocess_slices(hu_stack: np.ndarray, spec: ModelSpec, indices=None) -> np.ndarray:
    """HU slices ``(z, y, x)`` -> model input ``(n, context_slices, y, x)`` float32.

    ``indices`` picks which slices become inputs (default: all); their neighbours are taken from
    the whole stack (edge slices repeated at the ends), so a cropped set of slices keeps its true
    context. The in-plane size is not changed here (padding to the size multiple happens at the
    batch, see :func:`pad_to_multiple`).
    """
    hu_stack = np.asarray(hu_stack)
    if hu_stack.ndim != 3:
        raise ModelError(f"preprocess_slices needs a (z, y, x) stack, got shape {hu_stack.shape}.")
    n = hu_stack.shape[0]
    idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    if spec.context_slices == 1:
        return normalise_hu(hu_stack[idx], spec)[:, None]
    # normalise each needed slice once, then gather the context windows
    ctx = context_indices(idx, n, spec.context_slices)
    needed = np.unique(ctx)
    norm = normalise_hu(hu_stack[needed], spec)
    pos = np.searchsorted(needed, ctx)
    return norm[pos]


def pad_to_multiple(
    x: np.ndarray, multiple: int, value: float
) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad the last two axes of ``x`` at the end up to a multiple; returns (padded, (h, w))."""
    h, w = x.shape[-2:]
    ph = (-h) % multiple
    pw = (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    pad = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(x, pad, mode="constant", constant_values=value), (h, w)
