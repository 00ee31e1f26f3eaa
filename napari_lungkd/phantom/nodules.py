"""Nodules of the synthetic chest: what kinds, how big, where, what shape, and how they are painted.

Kinds follow what LIDC readers mark: solid, part-solid (a solid core in a ground-glass halo),
ground-glass (non-solid) and calcified; locations are isolated, juxtavascular (touching a vessel)
and juxtapleural (touching the chest wall: the truth stops at the pleura). Margins are smooth,
lobulated (a few broad bumps) or spiculated (many thin spikes). Sizes follow a log-normal around
7 mm, 3-30 mm, plus sub-3 mm nodules that readers mark with a single point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("solid", "part-solid", "ground-glass", "calcified")
KIND_P = (0.52, 0.13, 0.2, 0.15)
LOCATIONS = ("isolated", "juxtavascular", "juxtapleural")
LOCATION_P = (0.5, 0.25, 0.25)
COUNT_P = (0.12, 0.22, 0.22, 0.17, 0.12, 0.09, 0.06)  # 0..6 nodules per case


@dataclass(frozen=True)
class NoduleFact:
    """The truth about one synthetic nodule (what the generator made, not what readers saw)."""

    label: int  # value in Phantom.labels
    kind: str  # solid | part-solid | ground-glass | calcified
    location: str  # isolated | juxtavascular | juxtapleural
    margin: str  # smooth | lobulated | spiculated
    diameter_mm: float  # nominal diameter of the shape (before margin bumps)
    centre_zyx: tuple[float, float, float]  # voxel index
    centre_mm: tuple[float, float, float]  # LPS (x, y, z)
    volume_mm3: float = 0.0  # of the truth mask
    n_voxels: int = 0
    mean_hu: float = 0.0
    cavity: bool = False
    calcification: int = (
        6  # LIDC code: 1 popcorn, 2 laminated, 3 solid, 4 non-central, 5 central, 6 absent
    )
    subtlety: int = 5  # LIDC 1 (extremely subtle) .. 5 (obvious)

    @property
    def small(self) -> bool:
        """Below 3 mm: LIDC readers mark it with a single point, not an outline."""
        return self.diameter_mm < 3.0

    def to_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d["small"] = self.small
        return d


@dataclass(frozen=True)
class NoduleShape:
    """Drawn parameters of one nodule, in the body frame (mm)."""

    kind: str
    location: str
    margin: str
    radius_mm: float
    centre: np.ndarray  # (X, Y, Z)
    lobes: np.ndarray  # (k, 3) unit directions
    lobe_gain: np.ndarray  # (k,)
    lobe_power: np.ndarray  # (k,)
    axes: np.ndarray  # (3,) anisotropy factors
    hu: float
    core_hu: float
    core_ratio: float  # solid / calcified core radius as a fraction (0 = none)
    cavity_ratio: float  # 0 = none
    cavity_offset: np.ndarray
    calcification: int


def sample_count(rng, n_nodules: int | None) -> int:
    return int(rng.choice(len(COUNT_P), p=COUNT_P)) if n_nodules is None else int(n_nodules)


def sample_shape(rng, centre, location, kind=None, diameter_mm=None) -> NoduleShape:
    kind = kind or str(rng.choice(KINDS, p=KIND_P))
    if diameter_mm is None:
        d = float(np.exp(rng.normal(np.log(7.0), 0.55)))
        d = float(np.clip(d, 3.0, 30.0)) if rng.random() > 0.14 else float(rng.uniform(1.6, 2.9))
    else:
        d = float(diameter_mm)
    if kind == "calcified":
        d = min(d, 14.0)
    r = d / 2.0
    margin = "smooth"
    if d >= 5.0 and kind != "calcified":
        margin = str(rng.choice(["smooth", "lobulated", "spiculated"], p=[0.45, 0.35, 0.2]))
    if margin == "lobulated":
        k = int(rng.integers(4, 8))
        gain, power = rng.uniform(0.12, 0.3, k), rng.uniform(3, 8, k)
    elif margin == "spiculated":
        k = int(rng.integers(8, 20))
        gain, power = rng.uniform(0.5, 1.3, k), rng.uniform(60, 220, k)
    else:
        k = 3
        gain, power = rng.uniform(0.0, 0.08, k), rng.uniform(1.5, 3, k)
    lobes = rng.normal(size=(k, 3))
    lobes /= np.linalg.norm(lobes, axis=1, keepdims=True)
    core_ratio, core_hu, calc, cavity = 0.0, 0.0, 6, 0.0
    if kind == "solid":
        hu = rng.uniform(5, 60)
        if d >= 12 and rng.random() < 0.25:
            cavity = rng.uniform(0.28, 0.45)
    elif kind == "part-solid":
        hu, core_ratio, core_hu = (
            rng.uniform(-650, -450),
            rng.uniform(0.35, 0.6),
            rng.uniform(0, 50),
        )
    elif kind == "ground-glass":
        hu = rng.uniform(-720, -480)
    else:
        calc = int(rng.choice([3, 5, 1, 2], p=[0.45, 0.3, 0.15, 0.1]))
        hu = rng.uniform(30, 90)
        core_ratio = 1.0 if calc == 3 else rng.uniform(0.35, 0.7)
        core_hu = rng.uniform(350, 1100)
    return NoduleShape(
        kind=kind,
        location=location,
        margin=margin,
        radius_mm=r,
        centre=np.asarray(centre, float),
        lobes=lobes,
        lobe_gain=gain,
        lobe_power=power,
        axes=rng.uniform(0.85, 1.15, 3),
        hu=float(hu),
        core_hu=float(core_hu),
        core_ratio=float(core_ratio),
        cavity_ratio=float(cavity),
        cavity_offset=rng.normal(0, 0.15, 3),
        calcification=calc,
    )


def place_centres(rng, count, lung_dist_mm, coarse_start, coarse_step, vessels, radii, locations):
    """Choose centres (body mm) for nodules of the given radii and locations, not overlapping.

    Returns ``[(i, centre_xyz), ...]`` for the nodules that found a place.

    ``lung_dist_mm`` is the distance to the lung border on a coarse grid (0 outside the lungs).
    """
    placed: list[tuple[int, np.ndarray]] = []
    idx_all = np.argwhere(lung_dist_mm > 0)
    dist_all = lung_dist_mm[lung_dist_mm > 0]
    start, step = np.asarray(coarse_start), np.asarray(coarse_step)
    usable = [s for s in vessels if 0.9 <= s.r0 <= 3.5]
    for i in range(count):
        r, loc = radii[i], locations[i]
        for _ in range(40):
            if loc == "juxtavascular" and usable:
                s = usable[int(rng.integers(len(usable)))]
                p0, p1 = np.asarray(s.p0), np.asarray(s.p1)
                axis = p1 - p0
                perp = np.cross(axis, rng.normal(size=3))
                perp /= np.linalg.norm(perp) + 1e-9
                c = p0 + rng.uniform(0.2, 0.8) * axis + perp * (r * 0.85 + s.r0 * 0.6)
                zyx = np.round((c[::-1] - start) / step).astype(int)
                if (
                    np.any(zyx < 0)
                    or np.any(zyx >= lung_dist_mm.shape)
                    or lung_dist_mm[tuple(zyx)] < r
                ):
                    continue
            else:
                if loc == "juxtapleural":
                    ok = (dist_all > 0.25 * r) & (dist_all < 0.7 * r + 2.5)
                else:
                    ok = dist_all > r + 5.0
                cand = idx_all[ok]
                if cand.size == 0:
                    break
                zyx = cand[int(rng.integers(len(cand)))]
                c = (start + (zyx + rng.uniform(-0.5, 0.5, 3)) * step)[::-1]
            if all(np.linalg.norm(c - o) > r + radii[j] + 15.0 for j, o in placed):
                placed.append((i, np.asarray(c, float)))
                break
    return placed


def reach_mm(shape: NoduleShape) -> float:
    """How far from its centre the nodule's surface can reach (mm), spikes and lobes included."""
    return shape.radius_mm * (1.0 + float(np.max(shape.lobe_gain, initial=0.0))) * 1.2


def shape_field(shape: NoduleShape, x, y, z):
    """The shape's surface around offsets ``x, y, z`` (mm from its centre, broadcastable).

    Returns ``(x, y, z, rho, radius)``: the offsets scaled by the shape's axes, the scaled distance
    from the centre and the surface radius in that direction (bumps of the lobes and spikes
    included); a point is inside where ``rho < radius``.
    """
    x, y, z = x / shape.axes[0], y / shape.axes[1], z / shape.axes[2]
    rho = np.sqrt(x * x + y * y + z * z) + 1e-6
    bump = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), np.float32)
    for v, g, p in zip(shape.lobes, shape.lobe_gain, shape.lobe_power):
        cos = (x * v[0] + y * v[1] + z * v[2]) / rho
        bump += g * np.clip(cos, 0, None) ** p
    return x, y, z, rho, shape.radius_mm * (1.0 + bump)


def paint_nodule(hu, labels, label, shape: NoduleShape, grid, lung_at, soft_mm: float):
    """Paint one nodule into ``hu`` and its truth into ``labels`` (only inside the lung space).

    ``grid`` maps indices to body mm; ``lung_at(lo, hi)`` returns the lung mask in that box.
    Returns the truth voxel count and the mean HU of the truth voxels.
    """
    reach = reach_mm(shape) + soft_mm + 1.0
    c_idx = grid.to_index(shape.centre)
    pad = reach / np.asarray(grid.spacing_mm)
    lo = np.maximum(np.floor(c_idx - pad).astype(int), 0)
    hi = np.minimum(np.ceil(c_idx + pad).astype(int) + 1, grid.shape)
    if np.any(hi <= lo):
        return 0, 0.0
    sp, st = np.asarray(grid.spacing_mm), np.asarray(grid.start_mm)
    z = (st[0] + sp[0] * np.arange(lo[0], hi[0]))[:, None, None] - shape.centre[2]
    y = (st[1] + sp[1] * np.arange(lo[1], hi[1]))[None, :, None] - shape.centre[1]
    x = (st[2] + sp[2] * np.arange(lo[2], hi[2]))[None, None, :] - shape.centre[0]
    x, y, z, rho, radius = shape_field(shape, x, y, z)
    occ = np.clip((radius - rho) / soft_mm + 0.5, 0.0, 1.0)
    sub = hu[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    lung = lung_at(lo, hi)
    inside = (occ >= 0.5) & lung
    occ = np.where(lung | (occ >= 0.5), occ, 0.0)
    if shape.kind in ("ground-glass", "part-solid"):
        sub[...] = np.maximum(sub, sub + occ * (shape.hu - sub))
    else:
        sub += occ * (shape.hu - sub)
    if shape.core_ratio > 0:
        core = np.clip((shape.radius_mm * shape.core_ratio - rho) / soft_mm + 0.5, 0.0, 1.0)
        sub += core * (shape.core_hu - sub)
    if shape.cavity_ratio > 0:
        off = shape.cavity_offset * shape.radius_mm
        rc = np.sqrt((x - off[0]) ** 2 + (y - off[1]) ** 2 + (z - off[2]) ** 2)
        cav = np.clip((shape.radius_mm * shape.cavity_ratio - rc) / soft_mm + 0.5, 0.0, 1.0)
        sub += cav * (-960.0 - sub)
        inside &= cav < 0.5
    lab = labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    lab[inside] = label
    n = int(inside.sum())
    return n, float(sub[inside].mean()) if n else 0.0
