"""Many small tapered tubes drawn at once, with the scanner's partial volume.

The varied phantom's lung trees hold tens of thousands of segments; drawing them one numpy call
chain each (:func:`napari_lungkd.phantom.tubes.paint_tube`) would cost most of a case's time. Here
segments are drawn in z slabs: per slab, segments of similar box size are evaluated together as
one ``(k, z, y, x)`` array, the occupancies are merged as a union (``1 - prod(1 - occ)``, summed
as logarithms with one ``bincount``, so that overlapping segments at a joint do not add up), and
the slab is blended into the volume once.

Partial volume: the profile across a tube is a disc of radius ``r`` blurred by a Gaussian of
``sigma_mm`` (the point-spread function and the pixel, see :func:`tube_profile`), so a
sub-millimetre vessel is faint as on real CT rather than a full-contrast line one pixel wide;
along z every slice is the mean of ``z_sub`` samples across the slice thickness, so that a thin
vessel running in-plane through a thick slice is as faint as it is on a real thick slice.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

_LADDER = np.array([1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96])
_CHUNK_VOXELS = 400_000
SLAB_SLICES = 12


def z_subsamples(slice_mm: float) -> int:
    """How many samples across one slice: about one per 0.7 mm of slice thickness."""
    return max(1, int(math.ceil(slice_mm / 0.7 - 1e-6)))


def tube_profile(dist, radius, sigma_mm: float):
    """Occupancy (0..1) at ``dist`` mm from the axis of a tube of ``radius`` mm, blurred by a
    Gaussian of ``sigma_mm``: the exact blurred 1-D slab, scaled so that the centre value is the
    exact one of a blurred disc (``1 - exp(-r^2 / 2 sigma^2)``)."""
    k = np.float32(1.0 / (math.sqrt(2.0) * sigma_mm))
    edge = erf((radius - dist) * k) + erf((radius + dist) * k)
    r = np.asarray(radius, np.float32)
    centre = 1.0 - np.exp(-(r * r) * np.float32(0.5 / sigma_mm**2))
    scale = centre / np.maximum(erf(r * k), np.float32(1e-6))
    return (np.float32(0.5) * scale) * edge


def _bucket(n: np.ndarray) -> np.ndarray:
    i = np.searchsorted(_LADDER, n)
    return np.where(i < len(_LADDER), _LADDER[np.minimum(i, len(_LADDER) - 1)], n)


def blend_tubes(hu, grid, p0, p1, r0, r1, value: float, sigma_mm: float, z_sub: int = 1) -> None:
    """Blend ``value`` into ``hu`` (float32, z y x) with the union occupancy of tapered tubes.

    ``p0, p1`` are (n, 3) body-frame end points (X, Y, Z mm) and ``r0, r1`` (n,) radii (mm); a
    segment with ``p0 == p1`` is a ball. ``grid`` is the :class:`~napari_lungkd.phantom.tubes.Grid`
    of ``hu``. Deterministic: the result does not depend on the order of the segments.
    """
    p0 = np.asarray(p0, np.float64).reshape(-1, 3)
    p1 = np.asarray(p1, np.float64).reshape(-1, 3)
    if len(p0) == 0:
        return
    r0 = np.asarray(r0, np.float64).ravel()
    r1 = np.asarray(r1, np.float64).ravel()
    sz, sy, sx = grid.spacing_mm
    nz, ny, nx = grid.shape
    st = np.asarray(grid.start_mm)
    reach = np.maximum(r0, r1) + 2.2 * sigma_mm
    i0, i1 = grid.to_index(p0), grid.to_index(p1)  # (n, 3) z y x
    pad = reach[:, None] / np.asarray(grid.spacing_mm)[None]
    lo = np.floor(np.minimum(i0, i1) - pad + 0.5).astype(np.int64)
    hi = np.ceil(np.maximum(i0, i1) + pad + 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.asarray(grid.shape))
    ok = np.all(hi > lo, axis=1)
    if not ok.any():
        return
    sel = np.flatnonzero(ok)
    dz = sz / z_sub
    for z0 in range(int(lo[sel, 0].min()), int(hi[sel, 0].max()), SLAB_SLICES):
        z1 = min(z0 + SLAB_SLICES, nz)
        here = sel[(lo[sel, 0] < z1) & (hi[sel, 0] > z0)]
        if here.size == 0:
            continue
        y0, y1 = int(lo[here, 1].min()), int(hi[here, 1].max())
        x0, x1 = int(lo[here, 2].min()), int(hi[here, 2].max())
        acc_shape = ((z1 - z0) * z_sub, y1 - y0, x1 - x0)
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        # box of each segment in the slab, z in fine samples
        blo = np.stack([np.maximum(lo[here, 0], z0) * z_sub, lo[here, 1], lo[here, 2]], axis=1)
        bhi = np.stack([np.minimum(hi[here, 0], z1) * z_sub, hi[here, 1], hi[here, 2]], axis=1)
        ext = _bucket(bhi - blo)
        keys = (ext[:, 0] * 1000 + ext[:, 1]) * 1000 + ext[:, 2]
        for key in np.unique(keys):
            members = np.flatnonzero(keys == key)
            bz, by, bx = (int(v) for v in ext[members[0]])
            per = max(1, _CHUNK_VOXELS // (bz * by * bx))
            for c in range(0, len(members), per):
                m = members[c : c + per]
                g = here[m]
                _accumulate(
                    parts, acc_shape, (z0 * z_sub, y0, x0), blo[m], bhi[m], (bz, by, bx),
                    p0[g], p1[g], r0[g], r1[g], st, (dz, sy, sx), sz, sigma_mm,
                )  # fmt: skip
        idx = np.concatenate([a for a, _ in parts])
        w = np.concatenate([b for _, b in parts])
        acc = np.bincount(idx, weights=w, minlength=int(np.prod(acc_shape)))
        # the union of overlapping tubes: 1 - prod(1 - occ) from the sum of -log(1 - occ)
        hit = np.flatnonzero(acc)
        occ = np.zeros(acc.shape, np.float32)
        occ[hit] = -np.expm1(-acc[hit])
        occ = occ.reshape(z1 - z0, z_sub, y1 - y0, x1 - x0).mean(axis=1)
        sub = hu[z0:z1, y0:y1, x0:x1]
        sub += occ * (np.float32(value) - sub)


def _accumulate(parts, acc_shape, acc_lo, blo, bhi, ext, p0, p1, r0, r1, st, fine_sp, sz, sigma):
    """Evaluate one group of same-sized boxes; append (slab index, -log(1 - occupancy))."""
    f32 = np.float32
    bz, by, bx = ext
    dz, sy, sx = fine_sp
    jz = blo[:, 0:1] + np.arange(bz)[None]  # (k, bz) fine z sample index
    jy = blo[:, 1:2] + np.arange(by)[None]
    jx = blo[:, 2:3] + np.arange(bx)[None]
    # fine sample j of slice i sits at i*sz + (j + 0.5) * dz - sz / 2
    zc = (st[0] - sz / 2.0 + (jz + 0.5) * dz - p0[:, 2:3]).astype(f32)[:, :, None, None]
    yc = (st[1] + jy * sy - p0[:, 1:2]).astype(f32)[:, None, :, None]
    xc = (st[2] + jx * sx - p0[:, 0:1]).astype(f32)[:, None, None, :]
    d = (p1 - p0).astype(np.float64)
    inv = 1.0 / (np.einsum("ij,ij->i", d, d) + 1e-9)
    dx, dy, ddz = (d[:, i].astype(f32)[:, None, None, None] for i in range(3))
    t = xc * dx + yc * dy + zc * ddz
    t *= inv.astype(f32)[:, None, None, None]
    np.clip(t, f32(0), f32(1), out=t)
    ex, ey, ez = xc - t * dx, yc - t * dy, zc - t * ddz
    dist = np.sqrt(ex * ex + ey * ey + ez * ez)
    ra = r0.astype(f32)[:, None, None, None]
    radius = ra + t * (r1.astype(f32)[:, None, None, None] - ra)
    valid = (
        (jz < bhi[:, 0:1])[:, :, None, None]
        & (jy < bhi[:, 1:2])[:, None, :, None]
        & (jx < bhi[:, 2:3])[:, None, None, :]
    )
    keep = valid & (dist < radius + f32(2.2 * sigma))
    _, ay, ax = acc_shape
    idx = (((jz - acc_lo[0]) * ay)[:, :, None, None] + (jy - acc_lo[1])[:, None, :, None]) * ax + (
        jx - acc_lo[2]
    )[:, None, None, :]
    occ = tube_profile(dist[keep], radius[keep], sigma)
    idx = np.broadcast_to(idx, keep.shape)[keep]
    parts.append((idx, -np.log1p(-np.minimum(occ, f32(0.999)))))
