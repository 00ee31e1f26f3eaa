"""Tubes of the synthetic chest: the pulmonary vessel tree, airways and the great vessels.

A tube is a chain of tapered cylinder segments ``(p0, p1, r0, r1)`` in body-frame millimetres
(``X`` left, ``Y`` back, ``Z`` up). :func:`paint_tube` rasterises one segment with partial volume
(an occupancy ramp one PSF wide) only inside its bounding box, so a tree of a few thousand segments
costs a fraction of a second. In a single axial slice a vessel cut across looks like a small
nodule: the hard negative that a detector must learn to reject.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """Where a voxel array sits in the body frame: coordinate of index 0 and spacing, (z, y, x)."""

    start_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    shape: tuple[int, int, int]

    def to_index(self, p_xyz) -> np.ndarray:
        p = np.asarray(p_xyz, float)
        return (p[..., ::-1] - np.asarray(self.start_mm)) / np.asarray(self.spacing_mm)


@dataclass(frozen=True)
class Segment:
    p0: tuple[float, float, float]  # (X, Y, Z) mm
    p1: tuple[float, float, float]
    r0: float
    r1: float
    generation: int = 0


def paint_tube(
    vol, grid: Grid, seg: Segment, value: float, soft_mm: float, radius_add: float = 0.0
):
    """Blend ``value`` into ``vol`` with the segment's occupancy (0..1), in its bounding box."""
    r_max = max(seg.r0, seg.r1) + radius_add + soft_mm
    i0 = grid.to_index(seg.p0)
    i1 = grid.to_index(seg.p1)
    pad = r_max / np.asarray(grid.spacing_mm)
    lo = np.maximum(np.floor(np.minimum(i0, i1) - pad).astype(int), 0)
    hi = np.minimum(np.ceil(np.maximum(i0, i1) + pad).astype(int) + 1, grid.shape)
    if np.any(hi <= lo):
        return
    sp = grid.spacing_mm
    st = grid.start_mm
    f32 = np.float32
    zc = (st[0] - seg.p0[2] + sp[0] * np.arange(lo[0], hi[0])).astype(f32)[:, None, None]
    yc = (st[1] - seg.p0[1] + sp[1] * np.arange(lo[1], hi[1])).astype(f32)[None, :, None]
    xc = (st[2] - seg.p0[0] + sp[2] * np.arange(lo[2], hi[2])).astype(f32)[None, None, :]
    dx, dy, dz = (seg.p1[0] - seg.p0[0], seg.p1[1] - seg.p0[1], seg.p1[2] - seg.p0[2])
    inv = 1.0 / (dx * dx + dy * dy + dz * dz + 1e-9)
    dx, dy, dz = f32(dx), f32(dy), f32(dz)
    s = np.clip(xc * f32(dx * inv) + (yc * f32(dy * inv) + zc * f32(dz * inv)), f32(0), f32(1))
    ex, ey, ez = xc - s * dx, yc - s * dy, zc - s * dz
    dist = np.sqrt(ex * ex + ey * ey + ez * ez)
    radius = f32(seg.r0 + radius_add) + s * f32(seg.r1 - seg.r0)
    occ = np.clip((radius - dist) * f32(1.0 / soft_mm) + f32(0.5), f32(0), f32(1))
    sub = vol[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    sub += occ * (value - sub)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / (np.linalg.norm(v) + 1e-12)


def _cross(a, b) -> np.ndarray:
    return np.array(
        (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])
    )


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation of ``v`` about the unit ``axis``."""
    c, s = math.cos(angle), math.sin(angle)
    return v * c + _cross(axis, v) * s + axis * float(axis @ v) * (1 - c)


def grow_vessel_tree(
    rng, roots, inside, r_min_mm: float, max_segments: int = 3000
) -> list[Segment]:
    """Grow a branching, tapering tree from ``roots`` = [(start_xyz, direction, radius), ...].

    ``inside(x, y, z) -> bool`` says whether a point lies in the lung; branches stop at its
    border. Children follow Murray-like radius ratios and branch at 15-60 degrees.
    """
    segs: list[Segment] = []
    stack = [
        (np.asarray(p, float), _unit(d), float(r), 0, np.asarray(p, float)) for p, d, r in roots
    ]
    normals = rng.normal(size=(max_segments * 4 + 8, 3))
    u = rng.uniform(size=(max_segments * 4 + 8, 6))
    n_draw = 0
    while stack and len(segs) < max_segments:
        p, d, r, gen, hilum = stack.pop()
        n_draw = (n_draw + 1) % len(u)
        draw, normal = u[n_draw], normals[n_draw]
        length = (7.0 + 6.0 * draw[0]) * r**0.75 + 2.5
        end = None
        for attempt in range(5):
            if attempt:
                d = _unit(d + 0.6 * normals[(n_draw + attempt * 7) % len(normals)])
            for frac in (1.0, 0.6, 0.35, 0.2):
                q = p + d * (length * frac)
                if inside(*q) and (gen == 0 or inside(*(p + d * (length * frac * 0.5)))):
                    end = q
                    break
            if end is not None:
                break
        if end is None:
            continue
        r_end = r * (0.88 + 0.08 * draw[1])
        segs.append(Segment(tuple(p), tuple(end), r, r_end, gen))
        if r_end < r_min_mm:
            continue
        away = _unit(end - hilum)
        perp = _unit(_cross(d, normal))
        big, small = 0.74 + 0.14 * draw[2], 0.55 + 0.2 * draw[3]
        for ratio, angle, sign in (
            (big, 0.2 + 0.3 * draw[4], 1.0),
            (small, 0.6 + 0.4 * draw[5], -1.0),
        ):
            nd = _unit(_rotate(d, perp, sign * angle) + 0.2 * away)
            stack.append((end, nd, r_end * ratio, gen + 1, hilum))
    return segs


def hilum_roots(a, side: int) -> list[tuple]:
    """Root trunks of one lung's vessel tree (side -1 = right lung, +1 = left lung)."""
    t_h = 0.63 * a.length_mm
    x = side * (a.mediastinum_mm * 1.35 + 10.0) + 8.0
    y = -0.05 * a.half_depth_ant_mm
    p = (x, y, t_h)
    return [
        (p, (side * 0.6, -0.2, 0.8), 4.5),  # upper lobe
        (p, (side * 0.9, -0.4, 0.05), 4.0),  # middle / lingula
        (p, (side * 0.7, 0.5, -0.5), 5.0),  # lower lobe, towards the back
        (p, (side * 0.35, 0.1, -0.9), 4.5),  # lower lobe, down
        (p, (side * 0.5, 0.7, 0.3), 3.5),  # superior segment of the lower lobe
    ]


def great_vessels(a) -> list[tuple[Segment, float, str]]:
    """Aorta, pulmonary arteries, superior vena cava, trachea, main bronchi and oesophagus.

    Returns ``(segment, hu, kind)`` with kind ``"blood"``, ``"air"`` (lumen with a wall) or
    ``"tissue"``, to be painted on the coarse anatomy grid.
    """
    L = a.length_mm
    ys = a.spine_y_mm
    rs = a.spine_radius_mm
    blood = a.blood_hu
    desc = (24.0, ys - rs - 6.0)
    out: list[tuple[Segment, float, str]] = []

    def chain(points, r, hu, kind):
        for p0, p1 in zip(points[:-1], points[1:]):
            out.append((Segment(p0, p1, r, r), hu, kind))

    chain([(desc[0], desc[1], -5.0), (desc[0], desc[1], 0.8 * L)], 11.5, blood, "blood")
    chain(
        [
            (desc[0], desc[1], 0.8 * L),
            (14.0, ys - 55.0, 0.85 * L),
            (-6.0, -38.0, 0.83 * L),
            (-8.0, -36.0, 0.6 * L),
        ],
        13.0,
        blood,
        "blood",
    )
    chain([(-32.0, -22.0, L + 5.0), (-30.0, -22.0, 0.6 * L)], 9.0, blood * 0.8, "blood")
    trunk_top = (12.0, -18.0, 0.68 * L)
    chain([(14.0, -42.0, 0.58 * L), trunk_top], 12.0, blood, "blood")
    for side in (-1, 1):
        hx = side * (a.mediastinum_mm * 1.35 + 10.0) + 8.0
        chain([trunk_top, (hx, -0.05 * a.half_depth_ant_mm, 0.63 * L)], 8.5, blood, "blood")
    cz = a.carina_t * L
    ty = ys - rs - 30.0
    chain([(-2.0, ty, L + 5.0), (-2.0, ty, cz)], 8.5, -1000.0, "air")
    chain([(-2.0, ty, cz), (-a.mediastinum_mm - 14.0, ty + 8.0, cz - 22.0)], 6.5, -1000.0, "air")
    chain([(-2.0, ty, cz), (a.mediastinum_mm + 16.0, ty + 10.0, cz - 42.0)], 6.0, -1000.0, "air")
    chain([(6.0, ys - rs - 9.0, L + 5.0), (10.0, ys - rs - 9.0, 0.2 * L)], 6.5, 40.0, "tissue")
    return out


def bronchi_along(vessels: list[Segment], min_radius_mm: float = 2.8) -> list[Segment]:
    """Bronchi run beside the larger arteries: a thin-walled air tube next to each big segment."""
    out = []
    for s in vessels:
        if s.r0 < min_radius_mm or s.generation > 3:
            continue
        d = _unit(np.subtract(s.p1, s.p0))
        side = _unit(np.cross(d, (0.0, 0.0, 1.0)) + 1e-3)
        off = side * (s.r0 * 1.9 + 1.0)
        out.append(
            Segment(
                tuple(np.add(s.p0, off)),
                tuple(np.add(s.p1, off)),
                s.r0 * 0.8,
                s.r1 * 0.8,
                s.generation,
            )
        )
    return out
