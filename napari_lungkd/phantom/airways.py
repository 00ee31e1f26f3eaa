"""Bronchi that follow the pulmonary arteries: a soft-tissue wall around an air lumen.

In the lung a bronchus and its artery run side by side (the broncho-vascular bundle) and divide
together, the bronchus about as wide as the artery. Here every artery branch of at least
``r_min_mm`` that ends more than ``pleura_stop_mm`` from the pleura gets a bronchus beside it, offset
across the branch by the two radii and a small gap. The offset direction is carried from parent to
child (turned into the plane across the child), so the bronchial tree is continuous at every
division, as the artery tree is. Bronchi stop short of the outer lung, where real ones are too
small to see. The wall is 15 % of the outer diameter (at least 0.25 mm). A few segments may be
*plugged*: their lumen is filled with mucus (soft tissue) instead of air, a tubular opacity
beside an artery that a detector must not call a nodule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_lungkd.phantom.vessel_tree import Tree

HU_WALL = 25.0
HU_LUMEN = -985.0


@dataclass(frozen=True)
class Airways:
    """Bronchial segments (body-frame mm), one row each."""

    p0: np.ndarray  # (n, 3) X Y Z
    p1: np.ndarray
    outer0: np.ndarray  # outer radius at p0 (mm)
    outer1: np.ndarray
    lumen0: np.ndarray  # lumen radius at p0 (mm)
    lumen1: np.ndarray
    artery: np.ndarray  # (n,) the artery branch each follows (-1: a main bronchus link)
    generation: np.ndarray
    plugged: np.ndarray  # (n,) bool: lumen filled with mucus

    def __len__(self) -> int:
        return len(self.outer0)


def _unit(v):
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-12)


def follow_arteries(
    rng,
    tree: Tree,
    border_at,
    main_bronchus_end=None,
    r_min_mm: float = 1.0,
    pleura_stop_mm: float = 12.0,
    n_plugs: int = 0,
) -> Airways:
    """The bronchi beside ``tree`` (an artery tree). ``border_at(points)`` is the distance (mm)
    to the pleura of body points; ``main_bronchus_end`` (X, Y, Z) links the hilum to the trachea;
    ``n_plugs`` segments get a mucus-filled lumen."""
    n = len(tree)
    d = _unit(tree.p1 - tree.p0)
    ratio = rng.uniform(0.85, 1.15) * np.exp(rng.normal(0.0, 0.08, n))
    wall_frac = rng.uniform(0.13, 0.18)
    far = border_at(tree.p1) >= pleura_stop_mm
    take = (tree.r0 >= r_min_mm) & far
    # a bronchus only where its parent has one (lobar trunks always start one)
    root_dir = _unit(np.array([rng.normal(), 1.0, rng.normal(0.0, 0.3)]))
    off_dir_end = np.zeros((n, 3))
    off_end = np.zeros(n)
    rows = []
    order = np.argsort(tree.generation, kind="stable")  # parents before children
    root_points = []
    for i in order.tolist():
        par = int(tree.parent[i])
        if par >= 0 and not (take[par] and off_end[par] > 0):
            take[i] = False
        if not take[i]:
            continue
        ro0, ro1 = tree.r0[i] * ratio[i], tree.r1[i] * ratio[i]
        gap = 0.4 + 0.1 * tree.r0[i]
        if par < 0:
            o0 = _unit(root_dir - (root_dir @ d[i]) * d[i])
            a0 = tree.p0[i] + o0 * (tree.r0[i] + ro0 + gap)
            root_points.append(a0)
        else:
            o0 = off_dir_end[par]
            a0 = tree.p1[par] + o0 * off_end[par]
        o1 = _unit(o0 - (o0 @ d[i]) * d[i])
        off_dir_end[i] = o1
        off_end[i] = tree.r1[i] + ro1 + gap
        a1 = tree.p1[i] + o1 * off_end[i]
        rows.append((a0, a1, ro0, ro1, i, int(tree.generation[i]) + 1))
    if main_bronchus_end is not None and root_points:
        hub = np.mean(root_points, axis=0)
        rows.insert(0, (np.asarray(main_bronchus_end, float), hub, 6.0, 5.0, -1, 0))
        for a0 in root_points:
            rows.insert(1, (hub, a0, 5.0, 4.5, -1, 0))
    if not rows:
        z, e = np.zeros((0, 3)), np.zeros(0)
        return Airways(z, z, e, e, e, e, e.astype(int), e.astype(int), e.astype(bool))
    p0, p1, o0, o1, art, gen = (np.asarray(c) for c in zip(*rows))
    wall0 = np.maximum(0.25, wall_frac * 2.0 * o0)
    wall1 = np.maximum(0.25, wall_frac * 2.0 * o1)
    plugged = np.zeros(len(rows), bool)
    cand = np.flatnonzero((gen >= 3) & (o0 >= 1.2) & (o0 <= 3.5))
    if n_plugs and cand.size:
        plugged[rng.choice(cand, size=min(n_plugs, cand.size), replace=False)] = True
    return Airways(
        p0=p0,
        p1=p1,
        outer0=o0,
        outer1=o1,
        lumen0=np.maximum(o0 - wall0, 0.1),
        lumen1=np.maximum(o1 - wall1, 0.1),
        artery=art,
        generation=gen,
        plugged=plugged,
    )
