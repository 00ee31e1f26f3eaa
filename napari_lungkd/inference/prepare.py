"""The model input of one CT: the lung region, then normalised, cropped, padded slices in chunks.

:func:`iter_prepare` depends only on the CT and the model's preprocessing (not on the weights),
so a second model with the same preprocessing (the teacher after the student) reuses its
:class:`PreparedInput` instead of computing it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from napari_lungkd.errors import ModelError
from napari_lungkd.inference.lung_region import LungRegion, find_lung_region, whole_volume
from napari_lungkd.models.specs import (
    ModelSpec,
    background_value,
    pad_to_multiple,
    preprocess_slices,
)
from napari_lungkd.progress import Progress, ProgressGen

CHUNK_SLICES = 8
"""Consecutive slices that share one crop box (a box per run follows the lungs' size along z)."""


@dataclass(frozen=True, eq=False)
class InputChunk:
    """A run of consecutive lung slices cropped to their own box, ready for the model."""

    z_indices: np.ndarray
    box_yx: tuple[int, int, int, int]
    inputs: np.ndarray
    """``(n, context_slices, H, W)`` float32, H and W padded to the size multiple."""

    @property
    def crop_hw(self) -> tuple[int, int]:
        y0, y1, x0, x1 = self.box_yx
        return (y1 - y0, x1 - x0)


@dataclass(frozen=True, eq=False)
class PreparedInput:
    """The model input of one CT: lung region + normalised, cropped, padded slices in chunks."""

    region: LungRegion
    preprocessing: dict
    chunks: tuple[InputChunk, ...]
    ct_shape: tuple[int, int, int]
    ct_key: tuple
    seconds: float = 0.0

    @property
    def n_slices(self) -> int:
        return sum(len(c.z_indices) for c in self.chunks)

    @property
    def pixels_per_ct_slice(self) -> float:
        """Model input pixels, in units of whole CT slices (how much work the crop left)."""
        total = sum(c.inputs.shape[0] * c.inputs.shape[2] * c.inputs.shape[3] for c in self.chunks)
        return total / float(self.ct_shape[1] * self.ct_shape[2])

    def fits(self, ct, spec: ModelSpec) -> bool:
        return self.ct_key == ct_identity(ct) and self.preprocessing == spec.preprocessing()


def ct_identity(ct) -> tuple:
    """What identifies a CT for reuse of its prepared input (the same array, shape, source, series)."""
    return (
        id(ct.hu),
        tuple(ct.hu.shape),
        str(getattr(ct, "source", "")),
        getattr(ct, "series_uid", None),
    )


def check_ct(ct) -> None:
    """Refuse (ModelError) anything that is not a 3-D volume of HU."""
    hu = getattr(ct, "hu", None)
    if not isinstance(hu, np.ndarray) or hu.ndim != 3 or min(hu.shape) < 1:
        source = getattr(ct, "source", "") or "the CT"
        raise ModelError(
            f"{source} is not a 3-D CT volume (hu shape {getattr(hu, 'shape', None)}); cannot segment it."
        )
    if hu.shape[0] < 2:
        source = getattr(ct, "source", "") or "the CT"
        raise ModelError(
            f"{source} is a single slice, not a CT volume: nodules are found in 3-D across "
            "slices; open the whole series (its folder) to segment it."
        )
    from napari_lungkd.io.validate import not_hu_reason

    reason = not_hu_reason(ct)
    if reason:
        source = getattr(ct, "source", "") or "the CT"
        raise ModelError(
            f"{source} does not look like a CT in Hounsfield units ({reason}); it was not segmented."
        )


def iter_prepare(
    ct, spec: ModelSpec, use_lung_region: bool = True, chunk_slices: int = CHUNK_SLICES
) -> ProgressGen[PreparedInput]:
    """Lung region + preprocessing, yielding Progress per chunk of slices."""
    t0 = time.perf_counter()
    hu = ct.hu
    if spec.target_spacing_mm is not None:
        raise ModelError(
            f"Model {spec.name!r} wants in-plane resampling to {spec.target_spacing_mm} mm, which this version does not do."
        )
    region = (
        find_lung_region(hu, ct.spacing_mm, multiple=spec.size_multiple)
        if use_lung_region
        else whole_volume(hu.shape)
    )
    runs = region.chunks(chunk_slices)
    n = len(region.z_indices)
    fill = background_value(spec)
    yield Progress(0, n, "preprocess", f"{n}/{hu.shape[0]} slices with lung")
    chunks, done = [], 0
    for idx, (y0, y1, x0, x1) in runs:
        part = preprocess_slices(hu[:, y0:y1, x0:x1], spec, indices=idx)
        chunks.append(
            InputChunk(idx, (y0, y1, x0, x1), pad_to_multiple(part, spec.size_multiple, fill)[0])
        )
        done += len(idx)
        yield Progress(done, n, "preprocess", f"box {y1 - y0}x{x1 - x0}")
    return PreparedInput(
        region,
        spec.preprocessing(),
        tuple(chunks),
        tuple(hu.shape),
        ct_identity(ct),
        time.perf_counter() - t0,
    )
