"""RunSettings: how a :class:`~napari_lungkd.inference.segmenter.Segmenter` runs its model.

Fixed once per Segmenter (like nnU-Net's predictor settings), so that every call to
``iter_segment`` takes data only. Checked when made: a bad value is one sentence (ModelError).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from napari_lungkd.errors import ModelError

BACKENDS = ("eager", "onnx")
"""``eager``: PyTorch on any device; ``onnx``: ONNX Runtime on the CPU (the ``fast`` extra)."""


@dataclass(frozen=True)
class RunSettings:
    """Device, backend, threads, batch size, threshold and post-processing of one Segmenter."""

    device: str = "auto"
    """``auto`` (CUDA, else MPS, else CPU), ``cuda``, ``cuda:N``, ``mps`` or ``cpu``."""
    backend: str = "eager"
    num_threads: int | None = None
    """CPU threads (None: every core this process may use); ignored on a GPU."""
    batch_size: int | None = None
    """Slices per batch (None: 4 on the CPU, 16-32 on a GPU)."""
    threshold: float | None = None
    """Probability threshold (None: the model's own)."""
    use_lung_region: bool = True
    """Crop to the lungs found by an HU threshold (False: run on the whole volume)."""
    min_volume_mm3: float | None = None
    """Smallest nodule kept (None: the default of :mod:`napari_lungkd.inference.nodules`); applies
    when there is no false-positive classifier."""
    classifier: str | None = "auto"
    """The false-positive stage: ``auto`` (the model's classifier where one is installed or
    bundled), ``off`` (the U-Net mask's components are the nodules) or a classifier file path."""
    operating_point: float | None = None
    """Classifier score a candidate needs to be a nodule (None: the classifier's default, about
    one false positive per scan on its held-out scans)."""
    candidate_threshold: float | None = None
    """Probability above which voxels form candidates (None: the candidates module's default)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ModelError(f"Unknown backend {self.backend!r}; choose one of {BACKENDS}.")
        if self.threshold is not None and not 0.0 < float(self.threshold) < 1.0:
            raise ModelError(f"Threshold {self.threshold} is outside (0, 1).")
        for name in ("num_threads", "batch_size"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ModelError(f"{name} must be at least 1, not {value}.")
        for name in ("operating_point", "candidate_threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= float(value) <= 1.0:
                raise ModelError(f"{name} must lie in [0, 1], not {value}.")
        if self.min_volume_mm3 is not None and float(self.min_volume_mm3) < 0:
            raise ModelError(f"min_volume_mm3 must not be negative, not {self.min_volume_mm3}.")

    def with_(self, **changes) -> RunSettings:
        """A copy with ``changes``; an unknown name is a ModelError."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ModelError(
                f"Unknown run setting {unknown[0]!r}; the settings are {', '.join(sorted(known))}."
            )
        return replace(self, **changes) if changes else self
