"""The varied phantom's lungs: fissures, vessel trees, bronchi and benign look-alikes, painted.

One call from :func:`napari_lungkd.phantom.build.build` (``varied=True`` only; the classic phantom
keeps its own tree): grow an artery and a vein tree per lung from the hilum over the lobes
(:mod:`~napari_lungkd.phantom.vessel_tree`), bronchi beside the arteries
(:mod:`~napari_lungkd.phantom.airways`), fissures (:mod:`~napari_lungkd.phantom.fissures`) and
look-alikes (:mod:`~napari_lungkd.phantom.lookalikes`), then draw them all on the full grid with
partial volume (:mod:`~napari_lungkd.phantom.raster`). Every part has its own random stream,
spawned from the one it is given, so the case is byte-reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import distance_transform_edt

from napari_lungkd.phantom.airways import HU_LUMEN, HU_WALL, follow_arteries
from napari_lungkd.phantom.fissures import lobe_of, paint_fissures, sample_fissures
from napari_lungkd.phantom.lookalikes import atelectasis_bands, junction_knots, scars
from napari_lungkd.phantom.raster import blend_tubes, z_subsamples
from napari_lungkd.phantom.streaks import sample_streaks
from napari_lungkd.phantom.tubes import great_vessels, hilum_roots
from napari_lungkd.phantom.vessel_tree import Tree, grow_tree, lung_points


@dataclass
class LungDetail:
    vessels: list  # Segment rows of every artery and vein branch (for nodule placement)
    items: list  # look-alike dicts in the body frame (see lookalikes.record)
    trees: dict  # (kind, side) -> Tree
    airways: dict  # side -> Airways
    fissures: list
    streaks: dict  # the scanner's streaks near bone, see streaks.sample_streaks
    metadata: dict = field(default_factory=dict)


def paint_lung_detail(rng, anat, scan, hu, grid, work_grid, lung_w, f: int) -> LungDetail:
    """Grow and paint the lung's fine structure into ``hu`` (float32, full grid) in place."""
    r_fis, r_pts, r_tree, r_air, r_look, r_paint, r_streak = rng.spawn(7)
    sz, wpix = work_grid.spacing_mm[0], work_grid.spacing_mm[1]
    kz, kxy = max(1, int(round(3.0 / sz))), max(1, int(round(3.0 / wpix)))
    coarse = lung_w[::kz, ::kxy, ::kxy]
    c_step = (sz * kz, wpix * kxy, wpix * kxy)
    border = distance_transform_edt(np.pad(coarse, ((1, 1), (0, 0), (0, 0))), sampling=c_step)
    border = border[1:-1]
    c_start = np.asarray(work_grid.start_mm)
    w_start, w_step = np.asarray(work_grid.start_mm), np.asarray(work_grid.spacing_mm)

    def lookup(vol, start, step, q):
        i = np.round((np.asarray(q, float)[:, ::-1] - start) / step).astype(np.int64)
        ok = np.all((i >= 0) & (i < vol.shape), axis=1)
        out = np.zeros(len(i), vol.dtype)
        out[ok] = vol[tuple(i[ok].T)]
        return out

    def inside(q):
        return lookup(lung_w, w_start, w_step, q)

    def border_at(q):
        return lookup(border, c_start, np.asarray(c_step), q)

    hila = {side: np.asarray(hilum_roots(anat, side)[0][0], float) for side in (-1, 1)}
    fissures = sample_fissures(r_fis, anat, {s: tuple(h) for s, h in hila.items()})
    air = [seg for seg, _, kind in great_vessels(anat) if kind == "air"]
    main_end = {-1: air[1].p1, 1: air[2].p1}
    mm3_per_point = float(r_tree.uniform(520.0, 820.0))
    voxel_mm3 = float(np.prod(c_step))
    trees: dict = {}
    airways: dict = {}
    items: list = []
    side_pts = {}
    for side in (-1, 1):
        x = c_start[2] + c_step[2] * np.arange(coarse.shape[2])
        n_side = int((coarse[:, :, (x * side) > 0]).sum() * voxel_mm3 / mm3_per_point)
        n_side = max(n_side, 8)
        hx, hy, hz = hila[side]
        roots = {
            "artery": (hila[side], r_tree.uniform(5.0, 6.5)),
            "vein": (np.array([hx - side * 10.0, hy + 12.0, hz - 24.0]), r_tree.uniform(5.0, 6.5)),
        }
        for kind, (root, r_root) in roots.items():
            pts, bd = lung_points(r_pts, coarse, c_start, c_step, border, n_side, side_x=side)
            if len(pts) < 8:
                continue
            side_pts[side] = (pts, bd)
            lobes = lobe_of(fissures, side, pts)
            trees[(kind, side)] = grow_tree(r_tree, pts, bd, lobes, root, float(r_root), inside)
        if ("artery", side) in trees:
            airways[side] = follow_arteries(
                r_air,
                trees[("artery", side)],
                border_at,
                main_bronchus_end=main_end[side],
                n_plugs=int(r_air.choice([0, 1, 1, 2])),
            )
    # look-alikes
    balls: dict = {"artery": [], "vein": []}
    for (kind, _side), tree in sorted(trees.items()):
        b, it = junction_knots(r_look, tree, int(r_look.integers(1, 4)), int(r_look.integers(2, 5)))
        balls[kind] += b
        items += it
    opaque: list = []
    for _side, (pts, bd) in sorted(side_pts.items()):
        t, it = scars(r_look, pts, bd, int(r_look.choice([0, 0, 1, 2])))
        opaque += t
        items += it
        t, it = atelectasis_bands(r_look, pts, bd, int(r_look.choice([0, 1, 1, 2])))
        opaque += t
        items += it
    for _side, a in sorted(airways.items()):
        for i in np.flatnonzero(a.plugged).tolist():
            items.append(
                {
                    "kind": "mucus_plug",
                    "centre_xyz": 0.5 * (a.p0[i] + a.p1[i]),
                    "size_mm": float(max(np.linalg.norm(a.p1[i] - a.p0[i]), 2 * a.outer0[i])),
                }
            )

    # paint: fissures, opacities, veins, arteries, bronchial walls, lumens, plugs
    pix = grid.spacing_mm[1]
    sigma = math.sqrt(scan.psf_sigma_mm**2 + pix * pix / 12.0)
    zs = z_subsamples(grid.spacing_mm[0])
    paint_fissures(hu, grid, fissures, lung_w, f, sigma)
    if opaque:
        p0, p1, r0, r1 = (np.asarray(c) for c in zip(*opaque))
        blend_tubes(hu, grid, p0, p1, r0, r1, float(r_paint.uniform(-80.0, 20.0)), sigma, zs)
    vein_hu = anat.blood_hu * (r_paint.uniform(0.55, 0.95) if anat.contrast else 1.0)
    for kind, value in (("vein", vein_hu), ("artery", anat.blood_hu)):
        rows = [t for (k, _s), t in sorted(trees.items()) if k == kind]
        if not rows and not balls[kind]:
            continue
        p0, p1, r0, r1 = _bent(r_paint, rows)
        if balls[kind]:
            c = np.array([b[0] for b in balls[kind]])
            r = np.array([b[1] for b in balls[kind]])
            p0, p1 = np.vstack([p0, c]), np.vstack([p1, c])
            r0, r1 = np.concatenate([r0, r]), np.concatenate([r1, r])
        blend_tubes(hu, grid, p0, p1, r0, r1, float(value), sigma, zs)
    if airways:
        al = [airways[s] for s in sorted(airways)]
        cat = {k: np.concatenate([getattr(a, k) for a in al]) for k in
               ("p0", "p1", "outer0", "outer1", "lumen0", "lumen1", "plugged")}  # fmt: skip
        blend_tubes(
            hu, grid, cat["p0"], cat["p1"], cat["outer0"], cat["outer1"], HU_WALL, sigma, zs
        )
        open_ = ~cat["plugged"]
        blend_tubes(
            hu, grid, cat["p0"][open_], cat["p1"][open_], cat["lumen0"][open_],
            cat["lumen1"][open_], HU_LUMEN, sigma, zs,
        )  # fmt: skip
        plug = cat["plugged"]
        if plug.any():
            blend_tubes(
                hu, grid, cat["p0"][plug], cat["p1"][plug], cat["lumen0"][plug],
                cat["lumen1"][plug], float(r_paint.uniform(0.0, 40.0)), sigma, zs,
            )  # fmt: skip
    vessels = [s for (_k, _s), t in sorted(trees.items()) for s in t.segments()]
    streaks = sample_streaks(r_streak)
    meta = {
        "n_vessel_segments": len(vessels),
        "n_bronchi": int(sum(len(a) for a in airways.values())),
        "lung_mm3_per_point": round(mm3_per_point, 1),
        "streak_hu": round(streaks["strength_hu"], 1),
        "fissures": [fis.kind for fis in fissures],
    }
    return LungDetail(vessels, items, trees, airways, fissures, streaks, meta)


def _bent(rng, trees: list[Tree]):
    """The branches as tubes; those longer than 6 mm bent a little at their middle."""
    if not trees:
        z = np.zeros((0, 3))
        return z, z, np.zeros(0), np.zeros(0)
    p0 = np.vstack([t.p0 for t in trees])
    p1 = np.vstack([t.p1 for t in trees])
    r0 = np.concatenate([t.r0 for t in trees])
    r1 = np.concatenate([t.r1 for t in trees])
    length = np.linalg.norm(p1 - p0, axis=1)
    bend = length > 6.0
    mid = 0.5 * (p0 + p1) + rng.normal(0.0, 1.0, p0.shape) * (0.05 * length)[:, None]
    rm = 0.5 * (r0 + r1)
    out0 = np.vstack([p0[~bend], p0[bend], mid[bend]])
    out1 = np.vstack([p1[~bend], mid[bend], p1[bend]])
    return (
        out0,
        out1,
        np.concatenate([r0[~bend], r0[bend], rm[bend]]),
        np.concatenate([r1[~bend], rm[bend], r1[bend]]),
    )
