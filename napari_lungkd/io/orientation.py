"""Orientation: turn a volume whose axes are a signed permutation of LPS into an identity-direction one.

napari draws a layer with ``scale`` and ``translate`` only, so every loader brings its volume to
``direction = identity`` (array axes ``(z, y, x)`` run along LPS +z, +y, +x) whenever the stored
direction is a signed axis permutation: axes are transposed and flipped (no resampling), and the
origin moves to the voxel that becomes ``[0, 0, 0]``. Oblique directions are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_TOLERANCE = 1e-6  # |cosine| within this of 1 counts as an axis (about 0.08 degrees)


@dataclass(frozen=True)
class AxisChange:
    """How the array axes move: ``np.transpose(a, transpose)``, then flip the axes in ``flip``."""

    transpose: tuple[int, int, int]
    flip: tuple[bool, bool, bool]

    @property
    def is_identity(self) -> bool:
        return self.transpose == (0, 1, 2) and not any(self.flip)

    @property
    def keeps_slice_axis(self) -> bool:
        """Array axis 0 is still the same slice axis (maybe reversed)."""
        return self.transpose[0] == 0

    def apply(self, array: np.ndarray) -> np.ndarray:
        out = np.transpose(array, self.transpose)
        index = tuple(slice(None, None, -1) if f else slice(None) for f in self.flip)
        return out[index]


def axis_change(direction, tolerance: float = _TOLERANCE) -> AxisChange | None:
    """The :class:`AxisChange` that brings ``direction`` (ITK 3x3) to identity; None if oblique."""
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    lps_axis, sign = [], []
    for i in range(3):  # index axis i = x, y, z (column i of the direction)
        j = int(np.argmax(np.abs(d[:, i])))
        if abs(abs(d[j, i]) - 1.0) > tolerance:
            return None
        lps_axis.append(j)
        sign.append(d[j, i] > 0)
    if sorted(lps_axis) != [0, 1, 2]:
        return None
    # array axis a holds index axis 2 - a; new array axis b must hold LPS axis 2 - b
    source = [lps_axis.index(2 - b) for b in range(3)]  # index axis feeding new array axis b
    return AxisChange(
        transpose=tuple(2 - i for i in source),  # type: ignore[arg-type]
        flip=tuple(not sign[i] for i in source),  # type: ignore[arg-type]
    )


def to_identity(
    array: np.ndarray,
    spacing_mm: tuple[float, float, float],
    origin_mm: tuple[float, float, float],
    direction,
) -> tuple[np.ndarray, tuple, tuple, np.ndarray, AxisChange | None]:
    """Reorient ``array`` ``(z, y, x)`` to identity direction when that is a pure axis change.

    Returns ``(array, spacing_mm, origin_mm, direction, change)``; ``change`` is None for an
    oblique direction (everything returned unchanged) and an identity change when nothing moved.
    The array is C-contiguous (copied only when axes move).
    """
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    change = axis_change(d)
    if change is None:
        return array, tuple(spacing_mm), tuple(origin_mm), d, None
    if change.is_identity:
        return array, tuple(spacing_mm), tuple(origin_mm), np.eye(3), change
    spacing_xyz = np.asarray(spacing_mm[::-1], dtype=float)
    size_xyz = np.asarray(array.shape[::-1], dtype=float)
    corner_xyz = np.zeros(3)
    new_spacing = []
    for b in range(3):
        i = 2 - change.transpose[b]  # source index axis
        new_spacing.append(float(spacing_xyz[i]))
        if change.flip[b]:
            corner_xyz[i] = size_xyz[i] - 1
    origin = np.asarray(origin_mm, dtype=float) + d @ (spacing_xyz * corner_xyz)
    out = np.ascontiguousarray(change.apply(array))
    return out, tuple(new_spacing), tuple(float(v) for v in origin), np.eye(3), change
