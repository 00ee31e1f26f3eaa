"""What one model found in one CT: :class:`Segmentation`, with typed :class:`Timings` and :class:`Provenance`.

Both records are frozen dataclasses with ``to_dict()`` for JSON (the CLI's report, the mask's
provenance sidecar, the napari layer metadata).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from napari_lungkd.inference.prepare import PreparedInput


@dataclass(frozen=True)
class Timings:
    """Seconds per step of one ``iter_segment`` call, and the model stage's throughput."""

    load: float
    """Model + weights: paid once per Segmenter, reported by its first result (0.0 on later ones)."""
    backend_setup: float
    """Runner set-up (module to device, ONNX export and session): once per Segmenter, like ``load``."""
    lung_region: float
    preprocess: float
    """Lung region + HU window + crops; 0.0 when a previous result's prepared input was reused."""
    model: float
    """The network alone (pasting the results back is counted in ``postprocess``)."""
    postprocess: float
    total: float
    """This CT with the model ready, end to end (``load`` and ``backend_setup`` not included)."""
    slices: int
    """Slices the model ran on (those with lung)."""
    slices_per_s: float
    ms_per_slice: float
    candidates: float = 0.0
    """The false-positive stage: 3-D candidates, their features and the classifier (0.0 without)."""

    @property
    def model_seconds_per_slice(self) -> float | None:
        """Seconds of the model stage per slice; None when no slice was run."""
        return self.model / self.slices if self.slices and self.model > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Provenance:
    """Where a result came from: model, weights, package, device and settings, input, time."""

    model: str
    encoder: str
    n_parameters: int
    weights_sha256: str
    """SHA-256 of the weights file, or ``random-init (testing)``."""
    weights_path: str | None
    trained_on: dict[str, Any] | None
    """What the weights file says it was trained on (data, split, reference, teacher); None
    for random weights or a file without that header."""
    package: str
    package_version: str
    device: str
    precision: str
    backend: str
    threads: int | None
    batch_size: int
    threshold: float
    spec: dict[str, Any]
    lung_region: dict[str, Any]
    prepared_reused: bool
    ct_source: str
    series_uid: str | None
    created_utc: str
    warnings: tuple[str, ...] = ()
    classifier: dict[str, Any] | None = None
    """The false-positive classifier (file, SHA-256) and the operating point applied; None when
    the nodules are the U-Net mask's components."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


@dataclass(frozen=True, eq=False)
class Segmentation:
    """What one model found in one CT."""

    probability: np.ndarray
    """float16 ``(z, y, x)`` on the CT's grid; 0 outside the lung region."""
    mask: np.ndarray
    """uint16 ``(z, y, x)``: nodule ``i`` of :attr:`nodules` is label ``i + 1`` (0 background)."""
    nodules: list
    """:class:`~napari_lungkd.inference.nodules.Nodule` records (the pieces of one nodule merged,
    each with its plausibility ``flag``): best classifier score first when the false-positive
    stage ran, else largest first."""
    timings: Timings
    provenance: Provenance
    prepared: PreparedInput | None = None
    warnings: tuple[str, ...] = field(default=())
    triage: Any = None
    """The candidates with their scores (:class:`~napari_lungkd.inference.fp_reduction.Triage`)
    when the false-positive stage ran: those below the operating point stay at hand."""

    @property
    def model_name(self) -> str:
        return self.provenance.model
