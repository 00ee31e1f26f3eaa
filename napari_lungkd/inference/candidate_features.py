"""What a candidate looks like in 3-D, in millimetres: the features the false-positive classifier reads.

Per candidate (a 26-connected component of the thresholded U-Net probability):

* size: ``volume_mm3``, ``equivalent_diameter_mm`` (the sphere of that volume), ``longest_diameter_mm``
  (largest distance between two of its voxels, 3-D), ``n_slices``;
* shape: ``elongation`` and ``flatness`` (pyradiomics' definitions: the square roots of the minor /
  major and least / major eigenvalues of the physical-space covariance of its voxels, each voxel a
  uniform box), ``sphericity`` (pi^(1/3) (6V)^(2/3) / surface area, area from marching cubes);
* model: ``prob_max``, ``prob_mean``;
* intensity: ``hu_mean``, ``hu_std``, ``hu_p10``, ``hu_p50``, ``hu_p90``;
* blob or tube (``blobness``, ``tubeness``, ``hessian_sigma_mm``): eigenvalues of the Hessian of the
  CT, Gaussian-smoothed at the candidate's own scale (sigma = r / sqrt(3), r the radius estimated from
  the component's middle principal axis), at the candidate's voxels; sorted by magnitude
  ``|l1| <= |l2| <= |l3|``, at its core (the brightest fifth of its voxels after smoothing), a bright blob has l1 ~ l2 ~ l3 < 0 and a bright tube l1 ~ 0, l2 ~ l3 < 0,
  so ``blobness = |l1| / |l3|`` and ``tubeness = (|l2| - |l1|) / |l3|`` where l2, l3 < 0 (else 0),
  medians over the voxels. The Hessian sees the CT, not the component, so a vessel that the U-Net
  cut to a blob still reads as a tube: the decisive feature on real chests;
* place: ``border_distance_mm`` (to the pleura, from the filled lung mask; juxtapleural nodules lie
  near 0 and must survive) and ``inside_lung`` (1/0).

All of it is rotation invariant and in physical units, so a nodule measures the same on a 0.6 mm or
a 5 mm CT (up to partial volume).
"""

from __future__ import annotations

import math

import numpy as np

FEATURE_NAMES = (
    "volume_mm3",
    "equivalent_diameter_mm",
    "longest_diameter_mm",
    "n_slices",
    "elongation",
    "flatness",
    "sphericity",
    "prob_max",
    "prob_mean",
    "hu_mean",
    "hu_std",
    "hu_p10",
    "hu_p50",
    "hu_p90",
    "blobness",
    "tubeness",
    "hessian_sigma_mm",
    "border_distance_mm",
    "inside_lung",
)
HU_CLIP = (-1000.0, 500.0)
"""The Hessian's input range: lung to soft tissue and calcium; metal and bone do not dominate it."""
MAX_HESSIAN_VOXELS = 2000
CORE_FRACTION = 0.2
"""Share of a candidate's voxels, the brightest after smoothing, where the Hessian is read."""
MAX_EXTENT_MM = 24.0
"""A candidate longer than this (a vessel run) has its Hessian read within this cube around its
brightest voxel."""
"""Share of a candidate's voxels, the brightest after smoothing, where the Hessian is read."""


def measure(
    sub: np.ndarray, start, hu: np.ndarray, probability: np.ndarray, spacing, lung=None
) -> dict:
    """Features of one candidate: ``sub`` is its boolean mask inside its bounding box, which starts
    at voxel ``start`` of the full ``hu`` / ``probability`` volumes; ``spacing`` is (z, y, x) mm."""
    spacing = tuple(float(s) for s in spacing)
    idx = np.argwhere(sub)
    pts = idx * np.asarray(spacing)
    n = len(idx)
    volume = n * spacing[0] * spacing[1] * spacing[2]
    eq_d = (6.0 * volume / math.pi) ** (1.0 / 3.0)
    cov = np.cov(pts.T) if n > 1 else np.zeros((3, 3))
    cov = cov + np.diag(np.square(spacing) / 12.0)  # each voxel a uniform box
    ev = np.sort(np.clip(np.linalg.eigvalsh(cov), 1e-9, None))[::-1]
    region = tuple(slice(s, s + d) for s, d in zip(start, sub.shape))
    hu_vals = np.asarray(hu[region], dtype=np.float32)[sub]
    p_vals = np.asarray(probability[region], dtype=np.float32)[sub]
    centroid = idx.mean(axis=0) + np.asarray(start)
    r_est = 2.1 * math.sqrt(ev[1])
    sigma = float(np.clip(r_est / math.sqrt(3.0), 0.5, 8.0))
    blob, tube = hessian_shape(hu, idx + np.asarray(start), spacing, sigma)
    p10, p50, p90 = np.percentile(hu_vals, [10, 50, 90])
    return {
        "volume_mm3": float(volume),
        "equivalent_diameter_mm": float(eq_d),
        "longest_diameter_mm": longest_diameter_mm(pts, spacing),
        "n_slices": float(len(np.unique(idx[:, 0]))),
        "elongation": float(math.sqrt(ev[1] / ev[0])),
        "flatness": float(math.sqrt(ev[2] / ev[0])),
        "sphericity": sphericity(sub, spacing, volume),
        "prob_max": float(p_vals.max()),
        "prob_mean": float(p_vals.mean()),
        "hu_mean": float(hu_vals.mean()),
        "hu_std": float(hu_vals.std()),
        "hu_p10": float(p10),
        "hu_p50": float(p50),
        "hu_p90": float(p90),
        "blobness": blob,
        "tubeness": tube,
        "hessian_sigma_mm": sigma,
        "border_distance_mm": lung.distance_at(centroid)
        if lung is not None and lung.found
        else 0.0,
        "inside_lung": float(lung.contains(centroid)) if lung is not None and lung.found else 0.0,
    }


def longest_diameter_mm(points_mm: np.ndarray, spacing) -> float:
    """Largest distance between two voxel centres (mm) plus one voxel: the extent end to end."""
    pts = np.asarray(points_mm, dtype=np.float64)
    if len(pts) > 8:
        from scipy.spatial import ConvexHull, QhullError

        try:
            pts = pts[ConvexHull(pts).vertices]
        except QhullError:  # flat: all points in a plane or on a line
            pass
    if len(pts) > 3000:  # a degenerate hull of a big flat component: sample it
        pts = pts[np.random.default_rng(0).choice(len(pts), 3000, replace=False)]
    d = pts[:, None, :] - pts[None, :, :]
    return float(np.sqrt((d * d).sum(-1)).max()) + float(min(spacing))


def sphericity(sub: np.ndarray, spacing, volume_mm3: float) -> float:
    """pi^(1/3) (6V)^(2/3) / A with A the marching-cubes surface (1 for a ball, less otherwise)."""
    from skimage.measure import marching_cubes, mesh_surface_area

    padded = np.pad(sub.astype(np.float32), 1)
    try:
        verts, faces, _, _ = marching_cubes(padded, 0.5, spacing=spacing)
    except (ValueError, RuntimeError):
        return 0.0
    area = mesh_surface_area(verts, faces)
    if area <= 0:
        return 0.0
    return float(math.pi ** (1.0 / 3.0) * (6.0 * volume_mm3) ** (2.0 / 3.0) / area)


def hessian_shape(
    hu: np.ndarray, voxels: np.ndarray, spacing, sigma_mm: float
) -> tuple[float, float]:
    """``(blobness, tubeness)`` medians over ``voxels`` (``(n, 3)`` indices into ``hu``) of the
    Hessian of ``hu`` smoothed with a Gaussian of ``sigma_mm`` (see the module docstring)."""
    from scipy import ndimage

    voxels = np.asarray(voxels)
    if len(voxels) > MAX_HESSIAN_VOXELS:
        voxels = voxels[
            np.random.default_rng(0).choice(len(voxels), MAX_HESSIAN_VOXELS, replace=False)
        ]
    # a long vessel makes a long candidate: read its Hessian around its brightest part only
    if (np.ptp(voxels, axis=0) * np.asarray(spacing)).max() > MAX_EXTENT_MM:
        centre = voxels[np.argmax(hu[voxels[:, 0], voxels[:, 1], voxels[:, 2]])]
        half = np.asarray([MAX_EXTENT_MM / 2.0 / s for s in spacing])
        near = np.all(np.abs(voxels - centre) <= half, axis=1)
        voxels = voxels[near]
    # resample the crop to isotropic voxels first: on 2.5-5 mm slices a small nodule spans two or
    # three slices, too few for a second derivative along z without interpolation
    iso = float(np.clip(min(spacing), 0.5, sigma_mm / 2.0))
    margin = [int(math.ceil((3.0 * sigma_mm + s) / s)) for s in spacing]
    lo = np.maximum(voxels.min(axis=0) - margin, 0)
    hi = np.minimum(voxels.max(axis=0) + np.asarray(margin) + 1, hu.shape)
    crop = np.clip(
        np.asarray(hu[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], dtype=np.float32), *HU_CLIP
    )
    factors = [s / iso for s in spacing]
    crop = ndimage.zoom(crop, factors, order=1, mode="nearest", grid_mode=False)
    scale = [(n_new - 1) / max(n_old - 1, 1) for n_new, n_old in zip(crop.shape, hi - lo)]
    local = np.rint((voxels - lo) * np.asarray(scale)).astype(int)
    local = np.clip(local, 1, np.asarray(crop.shape) - 2)
    smooth = ndimage.gaussian_filter(crop, sigma_mm / iso, mode="nearest")
    # the core: the brightest voxels after smoothing (a ball's centre, a tube's axis); at the edge
    # of a structure the Hessian describes the edge, not the shape
    s = smooth[local[:, 0], local[:, 1], local[:, 2]]
    core = local[s >= np.quantile(s, 1.0 - CORE_FRACTION)] if len(s) > 4 else local
    h = _second_derivatives(smooth, core) / (iso * iso)
    ev = np.linalg.eigvalsh(h)
    order = np.argsort(np.abs(ev), axis=1)
    ev = np.take_along_axis(ev, order, axis=1)
    l1, l2, l3 = ev[:, 0], ev[:, 1], ev[:, 2]
    bright = (l2 < 0) & (l3 < 0)
    a3 = np.maximum(np.abs(l3), 1e-9)
    blob = np.where(bright & (l1 < 0), np.abs(l1) / a3, 0.0)
    tube = np.where(bright, (np.abs(l2) - np.abs(l1)) / a3, 0.0)
    return float(np.median(blob)), float(np.median(tube))


def _second_derivatives(img: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(n, 3, 3)`` Hessians of ``img`` at ``points`` (not on the border) by central differences
    (on an image already smoothed at the scale of interest, as good as Gaussian derivatives and a
    sixth of the work)."""
    z, y, x = points[:, 0], points[:, 1], points[:, 2]
    c = img[z, y, x].astype(np.float64)
    h = np.empty((len(points), 3, 3), dtype=np.float64)
    unit = np.eye(3, dtype=int)
    for a in range(3):
        da = unit[a]
        plus = img[z + da[0], y + da[1], x + da[2]]
        minus = img[z - da[0], y - da[1], x - da[2]]
        h[:, a, a] = plus + minus - 2.0 * c
        for b in range(a + 1, 3):
            db = unit[b]
            pp = img[z + da[0] + db[0], y + da[1] + db[1], x + da[2] + db[2]]
            pm = img[z + da[0] - db[0], y + da[1] - db[1], x + da[2] - db[2]]
            mp = img[z - da[0] + db[0], y - da[1] + db[1], x - da[2] + db[2]]
            mm = img[z - da[0] - db[0], y - da[1] - db[1], x - da[2] - db[2]]
            h[:, a, b] = h[:, b, a] = (pp - pm - mp + mm) / 4.0
    return h
