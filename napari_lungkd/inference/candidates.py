"""Candidates: 3-D components of the U-Net probability above a sensitive threshold, with features.

The U-Net is the first stage of a two-stage detector (LUNA16: candidate generation, then
false-positive reduction). It looks at a few slices at a time, so a vessel cut across by the slice
looks like a nodule to it; in 3-D the same structure is a tube. This module turns the probability
map into candidates merged across slices (26-connected components of ``probability >= threshold``,
a lower threshold than the mask's so that the second stage, not the first, decides), and measures
each one (:mod:`~napari_lungkd.inference.candidate_features`). The classifier that scores them
comes after.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_lungkd.inference.candidate_features import FEATURE_NAMES, measure
from napari_lungkd.inference.lung_mask import LungMask, find_lung_mask

DEFAULT_CANDIDATE_THRESHOLD = 0.3
"""Probability above which a voxel belongs to a candidate (the mask's own threshold is 0.5)."""
DEFAULT_MIN_CANDIDATE_MM3 = 4.2
"""Smaller components are noise (the volume of a 2 mm sphere; LIDC readers outline from 3 mm)."""


@dataclass(frozen=True, eq=False)
class Candidate:
    """One 3-D component of the thresholded probability, measured."""

    label: int
    """Its value in :attr:`Candidates.labels` (1-based)."""
    bbox: tuple[int, int, int, int, int, int]
    """``(z0, y0, x0, z1, y1, x1)`` half-open voxel box."""
    centroid_zyx: tuple[float, float, float]
    features: dict[str, float] = field(default_factory=dict)
    score: float | None = None
    """Nodule probability from the false-positive classifier (None before scoring)."""

    def feature_vector(self) -> np.ndarray:
        return np.array([self.features[n] for n in FEATURE_NAMES], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Candidates:
    """Every candidate of one CT and the label volume they come from."""

    labels: np.ndarray
    """int32 ``(z, y, x)``: candidate ``i`` of :attr:`items` has label ``items[i].label``."""
    items: tuple[Candidate, ...]
    threshold: float
    lung_found: bool

    def __len__(self) -> int:
        return len(self.items)

    def matrix(self) -> np.ndarray:
        """``(n, len(FEATURE_NAMES))`` float64 feature matrix in :data:`FEATURE_NAMES` order."""
        if not self.items:
            return np.zeros((0, len(FEATURE_NAMES)))
        return np.stack([c.feature_vector() for c in self.items])


def find_candidates(
    probability: np.ndarray,
    hu: np.ndarray,
    spacing_mm,
    threshold: float = DEFAULT_CANDIDATE_THRESHOLD,
    min_volume_mm3: float = DEFAULT_MIN_CANDIDATE_MM3,
    lung: LungMask | None = None,
) -> Candidates:
    """Components of ``probability >= threshold`` (26-connected), each measured on ``hu``.

    ``lung`` (from :func:`~napari_lungkd.inference.lung_mask.find_lung_mask`) is computed from
    ``hu`` when not given; it gives each candidate its distance to the pleura.
    """
    from scipy import ndimage

    probability = np.asarray(probability)
    hu = np.asarray(hu)
    if probability.shape != hu.shape:
        raise ValueError(f"probability has shape {probability.shape}, the CT {hu.shape}")
    spacing = tuple(float(s) for s in spacing_mm)
    if lung is None:
        lung = find_lung_mask(hu, spacing)
    above = probability >= threshold
    full = np.zeros(above.shape, dtype=np.int32)
    if not above.any():
        return Candidates(full, (), float(threshold), lung.found)
    # label inside the box of what is above the threshold (the lungs at most), not the whole CT
    box = tuple(
        slice(int(a.min()), int(a.max()) + 1)
        for a in np.nonzero(
            above.any(axis=(1, 2)),
        )
        + np.nonzero(above.any(axis=(0, 2)))
        + np.nonzero(above.any(axis=(0, 1)))
    )
    offset = np.asarray([b.start for b in box])
    labels, n = ndimage.label(above[box], structure=np.ones((3, 3, 3), dtype=bool))
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    voxel_mm3 = spacing[0] * spacing[1] * spacing[2]
    items: list[Candidate] = []
    relabel = np.zeros(n + 1, dtype=np.int32)
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None or counts[lab] * voxel_mm3 < min_volume_mm3:
            continue
        sub = labels[sl] == lab
        start = tuple(int(s.start + o) for s, o in zip(sl, offset))
        centroid = tuple(float(c) for c in np.argwhere(sub).mean(axis=0) + np.asarray(start))
        feats = measure(sub, start, hu, probability, spacing, lung)
        new = len(items) + 1
        relabel[lab] = new
        items.append(
            Candidate(
                label=new,
                bbox=(*start, *(int(s.stop + o) for s, o in zip(sl, offset))),
                centroid_zyx=centroid,
                features=feats,
            )
        )
    full[box] = relabel[labels]
    return Candidates(full, tuple(items), float(threshold), lung.found)
