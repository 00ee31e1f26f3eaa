"""Seeded synthetic chest CT with true nodule masks, and LIDC-format cases made from it.

``make_phantom(seed)`` builds a :class:`Phantom`: a chest CT in HU (int16, ``(z, y, x)``) with body
wall, ribs and spine, mediastinum and heart, two lungs with a branching vessel tree and airways,
a table, and 0-6 nodules of the kinds LIDC readers mark, plus the true nodule label volume and one
:class:`~napari_lungkd.phantom_nodules.NoduleFact` per nodule. The same seed gives byte-identical
output. ``write_case(phantom, out_dir)`` (see :mod:`napari_lungkd.phantom_case`) writes it as a
real DICOM series, an LIDC XML from simulated readers, the truth mask (NIfTI) and a JSON of facts.

How it is made (modules, each a noun): :mod:`~napari_lungkd.phantom_anatomy` (tissues on a coarse
grid), :mod:`~napari_lungkd.phantom_bones`, :mod:`~napari_lungkd.phantom_tubes` (vessels, airways),
:mod:`~napari_lungkd.phantom_nodules`, :mod:`~napari_lungkd.phantom_scanner` (spacing, PSF, noise,
field of view), :mod:`~napari_lungkd.phantom_readers` (simulated radiologists),
:mod:`~napari_lungkd.phantom_lidc_xml` and :mod:`~napari_lungkd.phantom_dicom` (file formats).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_lungkd.phantom_nodules import NoduleFact

__all__ = ["Phantom", "NoduleFact", "make_phantom", "write_case"]


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
        from napari_lungkd.ct import CtVolume

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


def make_phantom(
    seed: int,
    size: int = 512,
    n_slices: int | None = None,
    *,
    n_nodules: int | None = None,
    kinds: tuple[str, ...] | None = None,
) -> Phantom:
    """Build the synthetic chest CT for ``seed``.

    ``size`` is the in-plane matrix (512 like clinical CT; smaller for tests); ``n_slices`` fixes
    the number of slices (the slice spacing then follows from the body length), otherwise the
    spacing is drawn from clinical values (0.625-2.5 mm). ``n_nodules`` (0-6 by default, drawn)
    and ``kinds`` (one kind per nodule) override the random choice.
    """
    from napari_lungkd.phantom_build import build

    if size < 32:
        raise ValueError(f"phantom size must be at least 32 pixels, got {size}")
    if n_slices is not None and n_slices < 4:
        raise ValueError(f"phantom n_slices must be at least 4, got {n_slices}")
    return build(int(seed), int(size), n_slices, n_nodules, kinds)


def write_case(
    phantom: Phantom, out_dir, n_readers: int = 4, seed: int | None = None, **kw
) -> dict:
    """Write ``phantom`` as DICOM series + LIDC XML + truth NIfTI + facts JSON; see phantom_case."""
    from napari_lungkd.phantom_case import write_case as _write_case

    return _write_case(phantom, out_dir, n_readers=n_readers, seed=seed, **kw)
