"""Isotropic 3-D patches of the CT around candidates: the input of a 3-D false-positive CNN.

    candidate_patches(hu, spacing_mm, centres_zyx) -> int16 (n, 32, 32, 32)

Each patch is a cube of ``size`` samples, ``step_mm`` apart in all three axes (32 at 1 mm: a
32 mm cube, which holds a nodule up to 30 mm with its surroundings, as LUNA16 FP-reduction networks
use), centred on the candidate's centre (voxel ``z, y, x``), sampled from the CT by trilinear
interpolation in physical space, so thick and thin slices give the same geometry. Outside the CT
the patch is air (-1000 HU). HU are clipped to int16.
"""

from __future__ import annotations

import numpy as np

PATCH_SIZE = 32
PATCH_STEP_MM = 1.0
AIR_HU = -1000.0


def candidate_patches(
    hu, spacing_mm, centres_zyx, size: int = PATCH_SIZE, step_mm: float = PATCH_STEP_MM
) -> np.ndarray:
    """``(n, size, size, size)`` int16 HU patches around ``centres_zyx`` (module doc)."""
    from scipy import ndimage

    hu = np.asarray(hu)
    centres = np.asarray(centres_zyx, dtype=np.float64).reshape(-1, 3)
    out = np.empty((len(centres), size, size, size), dtype=np.int16)
    if not len(centres):
        return out
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    offsets_mm = (np.arange(size) - (size - 1) / 2.0) * step_mm
    grid = np.stack(np.meshgrid(offsets_mm, offsets_mm, offsets_mm, indexing="ij"))  # (3, s, s, s)
    for i, c in enumerate(centres):
        coords = c[:, None, None, None] + grid / spacing[:, None, None, None]
        vals = ndimage.map_coordinates(hu, coords, order=1, mode="constant", cval=AIR_HU)
        out[i] = np.clip(np.rint(vals), -32768, 32767).astype(np.int16)
    return out
