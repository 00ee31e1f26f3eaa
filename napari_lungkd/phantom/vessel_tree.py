"""Space-filling vessel trees: from the hilum to within a few millimetres of the pleura.

The lung is a cloud of points (a jittered uniform sample of the lung, each with its distance to
the pleura). A tree is grown by dividing territories, as in Kitaoka et al.'s airway model (J Appl
Physiol 1999): every branch owns the points of its territory, runs from its parent's end towards
the territory's centroid (length about 6 radii, never past the centroid), and its territory is cut
in two by the plane that contains the branch and is normal to the territory's widest spread
across it. Each half feeds one child; the children's radii follow Murray's law for the flow
(the number of points) each carries: ``r_parent^3 = r_1^3 + r_2^3`` (with a few per cent of
jitter). A territory of one or two points ends the branch at its point nearest the pleura, so
the terminal branches, sub-millimetre across, reach the lung's edge everywhere. Trees are grown
per lobe: no vessel crosses a fissure. All branches of a generation are grown at once, with
array operations, so a tree of some thousands of branches takes a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_lungkd.phantom.tubes import Segment


@dataclass(frozen=True)
class Tree:
    """Branches of one tree, one row each (body-frame mm): ``parent`` is -1 for a lobar trunk."""

    p0: np.ndarray  # (n, 3) X Y Z
    p1: np.ndarray
    r0: np.ndarray  # (n,) radius at p0 (mm)
    r1: np.ndarray  # radius at p1
    parent: np.ndarray  # (n,) int
    generation: np.ndarray  # (n,) int, 0 = lobar trunk
    flow: np.ndarray  # (n,) points of lung the branch feeds

    def __len__(self) -> int:
        return len(self.r0)

    def children(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i, p in enumerate(self.parent.tolist()):
            if p >= 0:
                out.setdefault(p, []).append(i)
        return out

    def leaves(self) -> np.ndarray:
        has_child = np.zeros(len(self), bool)
        has_child[self.parent[self.parent >= 0]] = True
        return np.flatnonzero(~has_child)

    def segments(self) -> list[Segment]:
        return [
            Segment(tuple(a), tuple(b), float(r), float(s), int(g))
            for a, b, r, s, g in zip(
                self.p0.tolist(), self.p1.tolist(), self.r0, self.r1, self.generation
            )
        ]


def lung_points(rng, lung, start_mm, spacing_mm, border_mm, n: int, side_x=None):
    """``n`` jittered uniform points of the lung mask (body frame X Y Z) and their distance (mm)
    to the pleura; ``border_mm`` is that distance on the mask's grid, ``side_x`` keeps X < 0 (-1)
    or X > 0 (+1) only."""
    idx = np.argwhere(lung)
    start, step = np.asarray(start_mm), np.asarray(spacing_mm)
    if side_x is not None:
        x = start[2] + step[2] * idx[:, 2]
        idx = idx[(x * side_x) > 0]
    if len(idx) == 0:
        return np.zeros((0, 3)), np.zeros(0)
    pick = idx[rng.choice(len(idx), size=min(n, len(idx)), replace=False)]
    pick = pick[np.lexsort(pick.T[::-1])]  # a fixed order, whatever the choice's order
    zyx = start + (pick + rng.uniform(-0.5, 0.5, pick.shape)) * step
    return zyx[:, ::-1].copy(), border_mm[tuple(pick.T)].astype(np.float64)


def grow_tree(
    rng, points, border_mm, lobes, root_xyz, r_root_mm: float, inside, r_min_mm: float = 0.35
) -> Tree:
    """Grow one tree from ``root_xyz`` over ``points`` (m, 3) with lobe labels ``lobes`` (m,).

    ``inside(q)`` says for (k, 3) body points whether they lie in the lung (a branch whose path
    leaves the lung is moved to a territory point whose path stays in, or dropped).
    """
    points = np.asarray(points, np.float64)
    m = len(points)
    rows: list[tuple] = []
    owner = np.full(m, -1, np.int64)
    starts, radii, parents, gens = [], [], [], []
    for lobe in np.unique(lobes):
        sel = lobes == lobe
        if sel.sum() < 3:
            continue
        owner[sel] = len(starts)
        starts.append(np.asarray(root_xyz, np.float64))
        radii.append(r_root_mm * (sel.sum() / m) ** (1.0 / 3.0))
        parents.append(-1)
        gens.append(0)
    start = np.asarray(starts).reshape(-1, 3)
    radius, parent, gen = np.asarray(radii), np.asarray(parents), np.asarray(gens)
    n_branch = 0
    while len(start):
        k = len(start)
        rows_out, owner = _grow_level(
            rng, points, border_mm, owner, start, radius, parent, gen, n_branch, inside, r_min_mm
        )
        rows += rows_out[0]
        n_branch += k
        start, radius, parent, gen = rows_out[1]
    if not rows:
        z = np.zeros((0, 3))
        e = np.zeros(0)
        return Tree(z, z, e, e, e.astype(int), e.astype(int), e.astype(int))
    ids = np.array([r[0] for r in rows])
    order = np.argsort(ids, kind="stable")
    remap = np.full(n_branch, -1, np.int64)
    remap[ids[order]] = np.arange(len(ids))
    cols = list(zip(*[rows[i] for i in order]))
    par = np.asarray(cols[5])
    return Tree(
        p0=np.asarray(cols[1]),
        p1=np.asarray(cols[2]),
        r0=np.asarray(cols[3]),
        r1=np.asarray(cols[4]),
        parent=np.where(par >= 0, remap[np.maximum(par, 0)], -1),
        generation=np.asarray(cols[6]),
        flow=np.asarray(cols[7]),
    )


def _grow_level(rng, pts, border, owner, start, radius, parent, gen, id0, inside, r_min):
    """One generation: place every active branch, then split its territory for its children."""
    k = len(start)
    has = owner >= 0
    own = owner[has]
    p = pts[has]
    n = np.bincount(own, minlength=k).astype(np.float64)
    cen = np.stack([np.bincount(own, p[:, i], minlength=k) for i in range(3)], 1)
    cen /= np.maximum(n, 1)[:, None]
    taper = rng.uniform(0.92, 0.97, k)
    r_end = radius * taper
    leaf = (n <= 2) | (r_end * 0.79 < r_min)
    # planned end: towards the centroid, about 6 radii, never past 80 % of the way
    v = cen - start
    dist = np.linalg.norm(v, axis=1) + 1e-9
    length = np.clip(rng.uniform(5.0, 8.0, k) * radius, 0.3 * dist, 0.8 * dist)
    end = start + v / dist[:, None] * length[:, None]
    # leaves end at their point nearest the pleura
    order = np.lexsort((border[has], own))
    first = np.unique(own[order], return_index=True)
    nearest_pleura = np.zeros((k, 3))
    nearest_pleura[first[0]] = p[order[first[1]]]
    end[leaf] = nearest_pleura[leaf]
    # fall-backs where the path leaves the lung: the territory point nearest the centroid, then
    # the one nearest the branch's start
    ok = _path_inside(start, end, gen, inside)
    for target in (cen, start):
        if ok.all():
            break
        d2 = np.sum((p - target[own]) ** 2, axis=1)
        order = np.lexsort((d2, own))
        first = np.unique(own[order], return_index=True)
        alt = end.copy()
        alt[first[0]] = p[order[first[1]]]
        alt_ok = _path_inside(start, alt, gen, inside)
        fix = ~ok & alt_ok
        end[fix] = alt[fix]
        ok |= fix
    keep = ok & (n > 0)
    ids = id0 + np.arange(k)
    rows = [
        (int(ids[i]), tuple(start[i]), tuple(end[i]), float(radius[i]), float(r_end[i]),
         int(parent[i]), int(gen[i]), int(n[i]))
        for i in np.flatnonzero(keep)
    ]  # fmt: skip
    split = keep & ~leaf
    new_owner = np.full(len(owner), -1, np.int64)
    if not split.any():
        return (
            rows,
            (np.zeros((0, 3)), np.zeros(0), np.zeros(0, int), np.zeros(0, int)),
        ), new_owner
    # the cutting plane contains the branch; its normal is the widest spread across the branch
    d = end - start
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
    q = p - cen[own]
    q -= np.sum(q * d[own], axis=1, keepdims=True) * d[own]
    cov = np.zeros((k, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            c = np.bincount(own, q[:, i] * q[:, j], minlength=k)
            cov[:, i, j] = cov[:, j, i] = c
    cov += np.eye(3)[None] * 1e-6
    axis = np.linalg.eigh(cov)[1][:, :, -1]
    # a little randomness in the cut: turn the normal about the branch
    ang = rng.normal(0.0, 0.25, k)
    axis = axis * np.cos(ang)[:, None] + np.cross(d, axis) * np.sin(ang)[:, None]
    side = (np.sum((p - end[own]) * axis[own], axis=1) > 0).astype(np.int64)
    child_key = own * 2 + side
    counts = np.bincount(child_key, minlength=2 * k).reshape(k, 2).astype(np.float64)
    jitter = np.exp(rng.normal(0.0, 0.03, (k, 2)))
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    child_r = r_end[:, None] * np.cbrt(share) * jitter
    live = split[:, None] & (counts > 0)
    slot = np.full(2 * k, -1, np.int64)
    slot[np.flatnonzero(live.ravel())] = np.arange(int(live.sum()))
    sel = has.copy()
    new_owner[sel] = slot[child_key]
    bi, si = np.nonzero(live)
    nxt = (end[bi], child_r[bi, si], ids[bi], gen[bi] + 1)
    return (rows, nxt), new_owner


def _path_inside(start, end, gen, inside) -> np.ndarray:
    ts = np.array([0.25, 0.5, 0.75, 1.0])
    q = start[:, None, :] + ts[None, :, None] * (end - start)[:, None, :]
    ok = inside(q.reshape(-1, 3)).reshape(len(start), len(ts))
    ok[gen == 0, :1] = True  # lobar trunks start in the hilum, outside the lung
    return ok.all(axis=1)


def murray_residuals(tree: Tree) -> np.ndarray:
    """Per bifurcation, ``(r1^3 + r2^3) / r_parent^3 - 1`` with the parent's end radius."""
    out = []
    for par, kids in tree.children().items():
        if len(kids) == 2:
            out.append(float(np.sum(tree.r0[kids] ** 3) / tree.r1[par] ** 3 - 1.0))
    return np.asarray(out)
