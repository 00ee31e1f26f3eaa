"""The lungs as a mask for the candidate stage: where a candidate lies and how far from the pleura.

Unlike :mod:`~napari_lungkd.inference.lung_region` (a box for the U-Net), the candidate features
need the lung itself, including what sits inside it: vessels, airway walls and nodules, and also
nodules that touch the chest wall (juxtapleural), which a plain air threshold leaves outside. The
recipe, on a copy subsampled in-plane to about 2 mm (the features need millimetres, not voxels):

1. air below -400 HU, 3-D components not touching the in-plane border, the big ones (as the lung
   region does);
2. a closing with a ball of ``closing_mm`` (10 mm: LUNA16-style lung masks close with a similar
   radius so that juxtapleural nodules, which dent the air space from the wall, come back inside)
   and per-slice hole filling (vessels and nodules inside the lung);
3. the Euclidean distance, in mm, from each lung voxel to the nearest voxel outside the lungs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_lungkd.inference.lung_region import lung_air


@dataclass(frozen=True, eq=False)
class LungMask:
    """The filled lung mask of one CT on a coarse grid, and the distance to its border."""

    inside: np.ndarray
    """bool ``(z, y', x')`` on the CT's slices, in-plane every ``step``-th voxel."""
    border_distance_mm: np.ndarray
    """float32, same grid: mm from each lung voxel to the nearest non-lung voxel (0 outside)."""
    step: int
    found: bool

    def _cell(self, zyx) -> tuple[int, int, int]:
        """The coarse-grid cell of a CT voxel position ``(z, y, x)`` (fractional is fine), clipped."""
        z, y, x = (int(round(float(v))) for v in zyx)
        nz, ny, nx = self.inside.shape
        return (
            min(max(z, 0), nz - 1),
            min(max(y // self.step, 0), ny - 1),
            min(max(x // self.step, 0), nx - 1),
        )

    def distance_at(self, zyx) -> float:
        """Border distance (mm) at a CT voxel position ``(z, y, x)``."""
        return float(self.border_distance_mm[self._cell(zyx)])

    def contains(self, zyx) -> bool:
        return bool(self.inside[self._cell(zyx)])


def find_lung_mask(
    hu: np.ndarray,
    spacing_mm,
    work_spacing_mm: float = 2.0,
    closing_mm: float = 10.0,
    keep_fraction: float = 0.1,
    min_volume_ml: float = 2.0,
) -> LungMask:
    """The filled lung mask of ``hu`` ``(z, y, x)`` and the distance to its border (see module)."""
    from scipy import ndimage

    hu = np.asarray(hu)
    sz, sy, sx = (float(s) for s in spacing_mm)
    step = max(1, int(round(work_spacing_mm / max(min(sy, sx), 1e-6))))
    small = hu[:, ::step, ::step]
    spacing = (sz, sy * step, sx * step)
    lungs, _ = lung_air(small, spacing, keep_fraction, min_volume_ml)
    if lungs is None:
        return LungMask(
            np.zeros(small.shape, dtype=bool), np.zeros(small.shape, np.float32), step, False
        )
    # close, fill and measure inside the lungs' box (plus the closing radius), not the whole CT
    pad = [int(np.ceil(closing_mm / s)) + 1 for s in spacing]
    nz = [np.flatnonzero(lungs.any(axis=ax)) for ax in ((1, 2), (0, 2), (0, 1))]
    box = tuple(
        slice(max(int(a[0]) - p, 0), min(int(a[-1]) + 1 + p, n))
        for a, p, n in zip(nz, pad, lungs.shape)
    )
    inner = _close(lungs[box], spacing, closing_mm)
    for k in range(inner.shape[0]):
        inner[k] = ndimage.binary_fill_holes(inner[k])
    lungs = np.zeros(small.shape, dtype=bool)
    lungs[box] = inner
    dist = np.zeros(small.shape, dtype=np.float32)
    dist[box] = ndimage.distance_transform_edt(np.pad(inner, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    return LungMask(lungs, dist, step, True)


def _close(mask: np.ndarray, spacing, radius_mm: float) -> np.ndarray:
    """Binary closing with a ball of ``radius_mm`` in physical space, by two distance transforms
    (a dilation then an erosion; much faster than a structuring element of ~500 voxels). The
    volume is padded so that the closing does not glue the lungs to its edge."""
    from scipy import ndimage

    pad = [max(1, int(np.ceil(radius_mm / s))) + 1 for s in spacing]
    padded = np.pad(mask, [(p, p) for p in pad])
    dilated = ndimage.distance_transform_edt(~padded, sampling=spacing) <= radius_mm
    closed = ndimage.distance_transform_edt(dilated, sampling=spacing) > radius_mm
    closed = closed[pad[0] : -pad[0], pad[1] : -pad[1], pad[2] : -pad[2]]
    return closed | mask
