"""Phantom: one synthetic chest CT (HU, spacing, origin) with its true nodule labels and facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_lungkd.ct import CtVolume
from napari_lungkd.phantom.nodules import NoduleFact


@dataclass(frozen=True, eq=False)
class Phantom:
    """One synthetic chest CT and its truth."""

    seed: int
    hu: np.ndarray  # int16 (z, y, x); -2048 outside the field of view
    spacing_mm: tuple[float, float, float]  # (z, y, x)
    origin_mm: tuple[float, float, float]  # LPS (x, y, z) of voxel [0, 0, 0]
    labels: np.ndarray  # uint8 (z, y, x): 0 background, NoduleFact.label inside each nodule
    nodules: tuple[NoduleFact, ...]
    distractors_zyx: np.ndarray  # (n, 3) voxel indices of vessel points that look like nodules
    scanner: Any  # phantom_scanner.Scanner
    anatomy: Any  # phantom_anatomy.Anatomy
    metadata: dict = field(default_factory=dict)
    # benign look-alikes (varied phantom only), never in ``labels``: dicts with kind
    # (vessel_junction | scar | atelectasis_band | mucus_plug), centre_zyx, centre_mm, size_mm
    lookalikes: tuple = ()

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.hu.shape)  # type: ignore[return-value]

    @property
    def patient_id(self) -> str:
        return f"LKD-PHANTOM-{self.seed:04d}"

    @property
    def z_positions_mm(self) -> np.ndarray:
        return self.origin_mm[2] + self.spacing_mm[0] * np.arange(self.shape[0])

    def nodule_mask(self, min_diameter_mm: float = 0.0) -> np.ndarray:
        """Binary mask (uint8) of the nodules at least ``min_diameter_mm`` across."""
        keep = [n.label for n in self.nodules if n.diameter_mm >= min_diameter_mm]
        return np.isin(self.labels, keep).astype(np.uint8)

    def to_ct(self):
        """The phantom as a :class:`~napari_lungkd.ct.CtVolume` (no DICOM identity)."""
        return CtVolume(
            hu=self.hu,
            spacing_mm=self.spacing_mm,
            origin_mm=self.origin_mm,
            direction=np.eye(3),
            z_positions_mm=self.z_positions_mm,
            patient_id=self.patient_id,
            source=f"synthetic phantom seed {self.seed}",
            metadata={"phantom_seed": self.seed, **self.metadata},
        )
