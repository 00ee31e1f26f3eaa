"""Is a row of the nodule table plausible as a nodule? One pure function and its thresholds.

A nodule (Fleischner glossary) is a rounded opacity up to 30 mm; LIDC readers outline them from
3 mm. A U-Net that sees a few slices at a time also marks what is not round in 3-D: a vessel cut
lengthwise (long and thin), or a streak on one slice that no round object could leave (a 29 mm
mark on a single 2.5 mm slice). The flag says why in a few words; it hides nothing (the row stays,
the radiologist decides), and the table puts flagged rows after the plausible ones.

Shape is read from the physical-space covariance of the nodule's voxels, each voxel a box
(:func:`~napari_lungkd.inference.nodules.shape_ratios`; eigenvalues l1 >= l2 >= l3): pyradiomics'
``elongation`` sqrt(l2 / l1) and ``flatness`` sqrt(l3 / l1). For an ellipsoid they are the ratios
of its axes, 1 for a ball. A tube has both small, so "flat" reads sqrt(l3 / l2) =
flatness / elongation (a sheet: wide in two directions, thin in the third).
"""

from __future__ import annotations

MIN_DIAMETER_MM = 3.0
"""Below this longest axial diameter a mark is smaller than anything LIDC readers outline."""
MAX_DIAMETER_MM = 30.0
"""Above this longest axial diameter an opacity is a mass, not a nodule (Fleischner)."""
ELONGATED_BELOW = 0.3
"""Elongation below this: over ~3x longer than wide (a vessel, not a nodule)."""
FLAT_BELOW = 0.3
"""On one slice, flatness below this: longer than ~3.9 slice thicknesses (10 mm on 2.5 mm
slices, 4 mm on 1 mm slices), which no round object leaves on a single slice. On several slices,
sqrt(l3 / l2) below this: a sheet over ~3x wider than thick."""


def plausibility(nodule) -> str:
    """The reasons ``nodule`` is implausible as a nodule, joined by "; " ("" when none): "< 3 mm",
    "> 30 mm (mass)", "1 slice" (or "flat" when on several), "elongated".

    ``nodule`` needs ``diameter_mm`` and ``n_slices``; ``elongation`` and ``flatness`` are read
    when present and not None (a :class:`~napari_lungkd.inference.nodules.Nodule` has them)."""
    reasons = []
    d = float(nodule.diameter_mm)
    if d < MIN_DIAMETER_MM:
        reasons.append(f"< {MIN_DIAMETER_MM:g} mm")
    elif d > MAX_DIAMETER_MM:
        reasons.append(f"> {MAX_DIAMETER_MM:g} mm (mass)")
    elongation = getattr(nodule, "elongation", None)
    flatness = getattr(nodule, "flatness", None)
    if flatness is not None and int(nodule.n_slices) == 1:
        if flatness < FLAT_BELOW:
            reasons.append("1 slice")
    elif flatness is not None and elongation:
        if flatness / elongation < FLAT_BELOW:
            reasons.append("flat")
    if elongation is not None and elongation < ELONGATED_BELOW:
        reasons.append("elongated")
    return "; ".join(reasons)


def is_plausible(nodule) -> bool:
    return not plausibility(nodule)
