"""Slice geometry of a DICOM series: order along the slice normal, spacing, gaps, duplicates, tilt.

:func:`order_frames` never trusts file names or InstanceNumber for the order: each slice's
ImagePositionPatient is projected on the slice normal (row x column direction cosines) and the
slices are sorted by that position. What it finds wrong but survivable becomes a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_lungkd.io.dicom.header import Frame
from napari_lungkd.io.dicom.majority import drop_minority, most_common
from napari_lungkd.io.validate import spacing_problem

DUPLICATE_TOLERANCE_MM = 0.01
_SPACING_TOLERANCE = 0.01  # relative deviation from the median spacing that counts as uneven
_TILT_TOLERANCE_DEG = 0.05


class GeometryError(Exception):
    """The slices cannot be put in order (no positions, no orientation)."""


@dataclass(frozen=True)
class OrderedFrames:
    frames: tuple[Frame, ...]
    positions_mm: np.ndarray  # along the slice normal, ascending
    spacing_mm: tuple[float, float, float]  # (z, y, x)
    origin_mm: tuple[float, float, float]  # LPS of voxel [0, 0, 0]
    direction: np.ndarray  # ITK convention, columns = row, column, normal directions
    warnings: tuple[str, ...]
    notes: dict


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if n < 1e-6:
        raise GeometryError("ImageOrientationPatient has a zero-length direction")
    return v / n


def order_frames(frames: list[Frame], z_spacing_hint_mm: float | None = None) -> OrderedFrames:
    """Sort ``frames`` (all of one series, one size) along the slice normal and measure spacing.

    ``z_spacing_hint_mm`` (SpacingBetweenSlices or SliceThickness) is used only for a single slice.
    """
    warnings: list[str] = []
    notes: dict = {}
    frames = _finite_only(frames, "iop", "ImageOrientationPatient", warnings)
    frames = _finite_only(frames, "ipp", "ImagePositionPatient", warnings)
    iops = [tuple(round(v, 4) for v in f.iop) if f.iop else None for f in frames]
    if any(o is not None for o in iops):
        frames, iop, left_out = drop_minority(
            frames, iops, lambda _: "slice(s) whose orientation differs from the rest"
        )
        if left_out:
            warnings.append(left_out)
    elif len(frames) > 1:
        raise GeometryError("its slices have no ImageOrientationPatient, so they cannot be ordered")
    else:
        iop = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        warnings.append("no ImageOrientationPatient: assumed axial orientation")
    row = _unit(np.asarray(iop[:3], dtype=float))
    col = _unit(np.asarray(iop[3:], dtype=float))
    normal = _unit(np.cross(row, col))

    no_position = [f for f in frames if f.ipp is None]
    if no_position:
        if len(frames) > 1 and len(no_position) == len(frames):
            raise GeometryError(
                "its slices have no ImagePositionPatient, so they cannot be ordered"
            )
        if len(frames) > 1:
            frames = [f for f in frames if f.ipp is not None]
            warnings.append(
                f"left out {len(no_position)} slice(s) without ImagePositionPatient "
                f"(e.g. {no_position[0].path.name})"
            )
        else:
            warnings.append("no ImagePositionPatient: origin set to (0, 0, 0)")
    ipps = np.asarray([f.ipp if f.ipp is not None else (0.0, 0.0, 0.0) for f in frames], float)
    positions = ipps @ normal
    big = 1 << 62
    inst = np.asarray([f.instance_number if f.instance_number is not None else big for f in frames])
    order = np.lexsort((inst, positions))  # by position, ties by InstanceNumber
    frames = [frames[i] for i in order]
    positions = positions[order]
    ipps = ipps[order]

    keep = np.ones(len(frames), dtype=bool)
    keep[1:] = (
        np.diff(positions) > DUPLICATE_TOLERANCE_MM
    )  # the first of a tie has the lower number
    if not keep.all():
        dropped = [frames[i] for i in np.flatnonzero(~keep)]
        warnings.append(
            f"dropped {len(dropped)} duplicate slice(s) at an already-filled position, keeping "
            f"the lower InstanceNumber (e.g. {dropped[0].path.name})"
        )
        notes["duplicate_files"] = [str(f.path) for f in dropped]
        frames = [f for f, k in zip(frames, keep) if k]
        positions, ipps = positions[keep], ipps[keep]

    spacing_z = _slice_spacing(positions, z_spacing_hint_mm, warnings, notes)
    if len(frames) > 1:
        tilt = _tilt_deg(ipps[-1] - ipps[0], normal)
        if tilt > _TILT_TOLERANCE_DEG:
            warnings.append(
                f"gantry tilt: the slices are offset along their planes by {tilt:.2f} degrees "
                "from the slice normal; the volume is shown without shear"
            )
            notes["gantry_tilt_deg"] = round(tilt, 3)

    pixel_spacing = most_common([f.pixel_spacing_mm for f in frames])
    if pixel_spacing is None:
        pixel_spacing = (1.0, 1.0)
        warnings.append("no PixelSpacing: assumed 1 mm pixels")
    problem = spacing_problem(pixel_spacing, ("PixelSpacing[0]", "PixelSpacing[1]"))
    if problem:
        raise GeometryError(f"{problem} (e.g. in {frames[0].path.name})")
    direction = np.column_stack([row, col, normal])
    return OrderedFrames(
        frames=tuple(frames),
        positions_mm=positions,
        spacing_mm=(spacing_z, float(pixel_spacing[0]), float(pixel_spacing[1])),
        origin_mm=tuple(float(v) for v in ipps[0]),  # type: ignore[arg-type]
        direction=direction,
        warnings=tuple(warnings),
        notes=notes,
    )


def _slice_spacing(positions: np.ndarray, hint_mm, warnings: list[str], notes: dict) -> float:
    if len(positions) < 2:
        if hint_mm and spacing_problem([hint_mm], ["SliceThickness"]):
            warnings.append(
                f"SliceThickness/SpacingBetweenSlices {hint_mm} is not a plausible slice "
                "thickness: assumed 1 mm"
            )
            hint_mm = None
        notes["z_spacing_source"] = "header (single slice)" if hint_mm else "default 1 mm"
        return float(hint_mm) if hint_mm and hint_mm > 0 else 1.0
    gaps = np.diff(positions)
    median = float(np.median(gaps))
    irregular = False
    missing = gaps > 1.5 * median
    if missing.any():
        irregular = True
        for i in np.flatnonzero(missing):
            n_missing = max(1, int(round(gaps[i] / median)) - 1)
            warnings.append(
                f"about {n_missing} missing slice(s) between positions {positions[i]:.2f} and "
                f"{positions[i + 1]:.2f} mm (gap {gaps[i]:.2f} mm, spacing {median:.2f} mm)"
            )
        notes["missing_slice_gaps_mm"] = [
            (float(positions[i]), float(positions[i + 1])) for i in np.flatnonzero(missing)
        ]
    regular = gaps[~missing]
    deviation = np.abs(regular - median) / median
    if (deviation > _SPACING_TOLERANCE).any():
        irregular = True
        warnings.append(
            f"uneven slice spacing: from {regular.min():.3f} to {regular.max():.3f} mm "
            f"(using the median, {median:.3f} mm)"
        )
    notes["z_spacing_source"] = "ImagePositionPatient"
    if irregular:
        return round(median, 6)
    return round(float(positions[-1] - positions[0]) / (len(positions) - 1), 6)


def _finite_only(frames: list[Frame], attr: str, tag: str, warnings: list[str]) -> list[Frame]:
    """Leave out slices whose ``tag`` holds NaN or inf (with a warning); refuse if all do."""
    bad = [
        f
        for f in frames
        if getattr(f, attr) is not None and not np.isfinite(getattr(f, attr)).all()
    ]
    bad_ids = {id(f) for f in bad}
    if not bad:
        return frames
    if len(bad) == len(frames):
        value = tuple(getattr(bad[0], attr))
        raise GeometryError(
            f"{tag} is {value} in every slice (e.g. {bad[0].path.name}), not finite"
        )
    warnings.append(
        f"left out {len(bad)} slice(s) whose {tag} is not finite (e.g. {bad[0].path.name}: "
        f"{tuple(getattr(bad[0], attr))})"
    )
    return [f for f in frames if id(f) not in bad_ids]


def _tilt_deg(offset: np.ndarray, normal: np.ndarray) -> float:
    length = float(np.linalg.norm(offset))
    if length < 1e-6:
        return 0.0
    cos = min(1.0, abs(float(offset @ normal)) / length)
    return float(np.degrees(np.arccos(cos)))
