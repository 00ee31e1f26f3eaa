"""Validation of every loaded CT: impossible values are refused or repaired, before any model runs.

Every loader (DICOM series and files, NIfTI, MetaImage, NRRD) ends with :func:`validate_ct`, so
no :class:`~napari_lungkd.ct.CtVolume` leaves ``load_ct`` with

* a voxel size that is zero, negative, NaN, infinite or absurd (outside :data:`SPACING_RANGE_MM`),
  a non-finite origin or a non-finite or singular direction: refused (:class:`CtLoadError`, one
  sentence naming the file and the header field, e.g. ``PixelSpacing`` or ``pixdim``);
* a point or a line (a 1x1x1 "volume", 1 x 1 x n): refused;
* NaN or infinite voxels: set to air (-1024 HU) with a warning that counts them, or refused when
  they are most of the volume;
* values that are not CT in Hounsfield units (an MR-like 0..1000, uint8 or int8 data, uint16
  0..65535): loaded, so that it can be looked at, with a loud warning, and marked in
  ``metadata["not_hu"]``; :func:`not_hu_reason` is what the segmenter checks before it runs, and it
  refuses such a volume with a :class:`~napari_lungkd.errors.ModelError` sentence.

Memory is checked before anything large is allocated: :func:`check_memory` refuses a declared size
above :func:`max_volume_bytes` (``LUNGKD_MAX_VOLUME_GB``, else 8 GiB or half the machine's RAM,
whichever is less).
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from napari_lungkd.ct import CtVolume
from napari_lungkd.errors import CtLoadError

AIR_HU = -1024
SPACING_RANGE_MM = (0.001, 100.0)
"""A voxel edge outside this range is not a CT's (CT pixels are 0.2..2 mm, slices 0.5..10 mm)."""
_MAX_BAD_FRACTION = 0.5  # more non-finite voxels than this: refused, not repaired
_DEFAULT_MAX_GIB = 8.0


# ---- memory ----------------------------------------------------------------------------------


def _physical_ram() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def max_volume_bytes() -> int:
    """The most memory one CT may need: ``LUNGKD_MAX_VOLUME_GB`` (GiB), else min(8 GiB, RAM / 2)."""
    env = os.environ.get("LUNGKD_MAX_VOLUME_GB")
    if env:
        try:
            return int(float(env) * 2**30)
        except ValueError:
            pass
    limit = int(_DEFAULT_MAX_GIB * 2**30)
    ram = _physical_ram()
    return min(limit, ram // 2) if ram else limit


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.0f} MiB"


def check_memory(n_bytes: int, what: str) -> None:
    """Refuse (CtLoadError) loading something that would need more than :func:`max_volume_bytes`.

    ``what`` begins the sentence: ``"{path} declares 65535 x 65535 pixels x 16 slices"``."""
    limit = max_volume_bytes()
    if n_bytes > limit:
        raise CtLoadError(
            f"{what}, which needs {gib(n_bytes)} of memory, more than the {gib(limit)} allowed "
            "(set LUNGKD_MAX_VOLUME_GB to allow more); it was not loaded."
        )


# ---- geometry --------------------------------------------------------------------------------


def spacing_problem(values, names) -> str | None:
    """Why voxel sizes ``values`` (mm) are impossible, naming the field, or None when they are fine."""
    lo, hi = SPACING_RANGE_MM
    for value, name in zip(values, names):
        try:
            v = float(value)
        except (TypeError, ValueError):
            return f"{name} is {value!r}, not a number"
        if not np.isfinite(v):
            return f"{name} is {v}, not a finite voxel size"
        if v <= 0:
            return f"{name} is {v:g} mm; a voxel size must be positive"
        if not lo <= v <= hi:
            return f"{name} is {v:g} mm, not a plausible CT voxel size ({lo:g} to {hi:g} mm)"
    return None


def check_geometry(ct: CtVolume, tags: dict[str, str] | None = None) -> None:
    """Refuse a CT whose spacing, origin or direction is impossible.

    ``tags`` names where each came from in the file (keys ``spacing_z``, ``spacing_y``,
    ``spacing_x``, ``origin``, ``direction``), so the sentence can name the header field."""
    tags = {
        "spacing_z": "the slice spacing",
        "spacing_y": "the row spacing",
        "spacing_x": "the column spacing",
        "origin": "the origin",
        "direction": "the direction",
        **(tags or {}),
    }
    names = [tags["spacing_z"], tags["spacing_y"], tags["spacing_x"]]
    problem = spacing_problem(ct.spacing_mm, names)
    if problem:
        raise CtLoadError(f"{ct.source}: {problem}; it was not loaded.")
    origin = np.asarray(ct.origin_mm, dtype=float)
    if origin.shape != (3,) or not np.isfinite(origin).all():
        raise CtLoadError(
            f"{ct.source}: {tags['origin']} is {tuple(origin.tolist())}, not a finite position; "
            "it was not loaded."
        )
    if ct.z_positions_mm is not None and not np.isfinite(np.asarray(ct.z_positions_mm)).all():
        raise CtLoadError(f"{ct.source}: a slice position is not finite; it was not loaded.")
    d = np.asarray(ct.direction, dtype=float)
    if d.shape != (3, 3) or not np.isfinite(d).all():
        raise CtLoadError(
            f"{ct.source}: {tags['direction']} is not a finite 3x3 matrix; it was not loaded."
        )
    if abs(float(np.linalg.det(d))) < 1e-3:
        raise CtLoadError(
            f"{ct.source}: {tags['direction']} is singular (its axes are parallel or zero); "
            "it was not loaded."
        )


# ---- values ----------------------------------------------------------------------------------


def _sample(hu: np.ndarray, target: int = 2_000_000) -> np.ndarray:
    """A strided view of about ``target`` voxels (every slice family, every region)."""
    step = max(1, int(round((hu.size / target) ** (1 / 3))))
    return hu[::step, ::step, ::step]


def hu_problem(hu: np.ndarray) -> tuple[str | None, list[str], dict]:
    """(why the values are not CT in HU or None, softer notes, the measured facts).

    A chest CT in HU has air (outside the body and in the lungs) near -1000, a body of soft tissue
    near 0..100, and lung parenchyma near -900..-500; metal aside, nothing above ~4000 HU."""
    v = _sample(hu).astype(np.float32, copy=False)
    v = v[np.isfinite(v)] if v.dtype.kind == "f" else v.ravel()
    if v.size == 0:
        return "it holds no finite value", [], {}
    facts = {
        "min": float(v.min()),
        "max": float(v.max()),
        "air_fraction": round(float(np.mean(v <= -500)), 4),
        "lung_fraction": round(float(np.mean((v > -950) & (v < -400))), 4),
        "body_fraction": round(float(np.mean((v > -200) & (v < 300))), 4),
        "above_4000_fraction": round(float(np.mean(v > 4000)), 4),
    }
    if facts["min"] > -200:
        return (
            f"its lowest value is {facts['min']:g}, but a CT in Hounsfield units has air near "
            f"-1000 (values {facts['min']:g}..{facts['max']:g} look like MR or unscaled data)",
            [],
            facts,
        )
    if facts["air_fraction"] < 0.001:
        return (
            f"almost none of it is air (below -500 HU), as no chest CT is "
            f"(values {facts['min']:g}..{facts['max']:g})",
            [],
            facts,
        )
    if facts["above_4000_fraction"] > 0.05:
        pct = 100 * facts["above_4000_fraction"]
        return (
            f"{pct:.0f}% of its voxels are above 4000 HU, which CT shows only for metal "
            f"(values {facts['min']:g}..{facts['max']:g})",
            [],
            facts,
        )
    if float(np.mean(v < -4000)) > 0.01:
        return (
            f"its values reach {facts['min']:g}, far below air (-1000 HU)",
            [],
            facts,
        )
    soft = []
    if facts["body_fraction"] < 0.001:
        soft.append("no voxel looks like soft tissue (-200..300 HU): is this a chest CT?")
    elif facts["lung_fraction"] < 0.001:
        soft.append("no voxel looks like lung (-950..-400 HU): is this a chest CT?")
    return None, soft, facts


def repair_non_finite(hu: np.ndarray, source: str, tag: str) -> tuple[np.ndarray, str | None]:
    """Set NaN/inf voxels to air with a warning; refuse when they are most of the volume."""
    if hu.dtype.kind != "f":
        return hu, None
    bad = ~np.isfinite(hu)
    n_bad = int(np.count_nonzero(bad))
    if n_bad == 0:
        return hu, None
    if n_bad > _MAX_BAD_FRACTION * hu.size:
        raise CtLoadError(
            f"{source}: {n_bad} of its {hu.size} voxels ({tag}) are NaN or infinite; "
            "it was not loaded."
        )
    hu = hu.copy() if not hu.flags.writeable else hu
    hu[bad] = AIR_HU
    pct = 100 * n_bad / hu.size
    return hu, (
        f"{n_bad} voxel(s) ({pct:.2g}%) of {tag} were NaN or infinite; they were set to "
        f"{AIR_HU} HU (air)"
    )


def validate_ct(ct: CtVolume, tags: dict[str, str] | None = None) -> CtVolume:
    """The checks every loader ends with (see the module docstring); returns the CT to use.

    ``tags`` names the header fields of this format (see :func:`check_geometry`; key ``voxels``
    names the pixel data)."""
    tags = dict(tags or {})
    hu = ct.hu
    if not isinstance(hu, np.ndarray) or hu.ndim != 3 or hu.dtype.kind not in "iuf":
        raise CtLoadError(f"{ct.source} holds no 3-D array of numbers; it was not loaded.")
    if sum(n >= 2 for n in hu.shape) < 2:  # a point or a line, not an image
        raise CtLoadError(
            f"{ct.source} is {hu.shape[2]} x {hu.shape[1]} pixels x {hu.shape[0]} slice(s): "
            "too small to be a CT image; it was not loaded."
        )
    check_geometry(ct, tags)
    warnings = list(ct.warnings)
    hu, note = repair_non_finite(hu, ct.source, tags.get("voxels", "the pixel data"))
    if note:
        warnings.append(note)
    reason, soft, facts = hu_problem(hu)
    meta = dict(ct.metadata)
    meta["hu_check"] = {"plausible": reason is None, **facts}
    if reason:
        meta["not_hu"] = reason
        warnings.append(
            f"NOT CT IN HOUNSFIELD UNITS? {reason}; it can be viewed, but it will not be segmented"
        )
    if soft:
        meta["hu_check"]["notes"] = soft
    return replace(ct, hu=hu, metadata=meta, warnings=tuple(warnings))


def not_hu_reason(ct) -> str | None:
    """Why a loaded CT is not in Hounsfield units (set by :func:`validate_ct`), or None."""
    meta = getattr(ct, "metadata", None) or {}
    reason = meta.get("not_hu")
    return str(reason) if reason else None
