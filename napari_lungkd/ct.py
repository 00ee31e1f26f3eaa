"""CtVolume, the one in-memory CT that every part of napari-lungkd works on (a leaf: no loading code).

Conventions (shared by every module):

* arrays are ``(z, y, x)``: slice, row, column;
* ``spacing_mm`` is ``(z, y, x)``;
* ``origin_mm`` is the patient-LPS position ``(x, y, z)`` of the centre of voxel ``[0, 0, 0]``
  (DICOM ImagePositionPatient of the first slice; SimpleITK ``GetOrigin()``);
* ``direction`` is a 3x3 matrix in ITK's convention: column ``i`` is the LPS unit vector of index
  axis ``i`` where the index axes are ordered ``(x=column, y=row, z=slice)``; i.e.
  ``lps = origin + direction @ (spacing_xyz * index_xyz)`` (SimpleITK ``GetDirection()`` reshaped
  row-major to 3x3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class CtVolume:
    """A chest CT in Hounsfield units with its patient geometry and DICOM identity."""

    hu: np.ndarray
    """HU values, ``(z, y, x)``, slices sorted by position along the slice normal (ascending).
    int16 when the rescale is integral (clinical CT), float32 otherwise."""
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    sop_uids: tuple[str, ...] | None = None
    """Per slice SOPInstanceUID, in slice order (DICOM input only)."""
    z_positions_mm: np.ndarray | None = None
    """Per slice position along the slice normal in mm (DICOM: ImagePositionPatient[2] for axial)."""
    series_uid: str | None = None
    patient_id: str | None = None
    source: str = ""
    """The path the volume was read from (or a description for generated volumes)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Anything else worth keeping: study UID, modality, manufacturer, padding, other series..."""
    warnings: tuple[str, ...] = ()
    """Problems found while loading that did not stop it (missing slice, uneven spacing...)."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.hu.shape)  # type: ignore[return-value]

    @property
    def name(self) -> str:
        """A short human name: patient and series, or the file name."""
        if self.patient_id:
            tail = f" {self.series_uid[-8:]}" if self.series_uid else ""
            return f"{self.patient_id}{tail}"
        return Path(self.source).name or "CT"

    def index_to_lps(self, zyx: np.ndarray) -> np.ndarray:
        """Map voxel indices ``(..., 3)`` in ``(z, y, x)`` order to LPS millimetres ``(x, y, z)``."""
        zyx = np.asarray(zyx, dtype=float)
        xyz = zyx[..., ::-1] * np.asarray(self.spacing_mm[::-1], dtype=float)
        return np.asarray(self.origin_mm, dtype=float) + xyz @ np.asarray(self.direction).T

    def lps_to_index(self, lps: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`index_to_lps`: LPS ``(..., 3)`` to fractional ``(z, y, x)`` indices."""
        rel = np.asarray(lps, dtype=float) - np.asarray(self.origin_mm, dtype=float)
        xyz = rel @ np.linalg.inv(np.asarray(self.direction)).T
        return (xyz / np.asarray(self.spacing_mm[::-1], dtype=float))[..., ::-1]
