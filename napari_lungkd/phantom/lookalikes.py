"""Benign look-alikes: what is not a nodule but could be taken for one (labelled negatives).

* ``vessel_junction``: a bifurcation of a 1-3 mm vessel, some drawn as a knot (a ball 1.2-1.6 times
  the parent's radius where the branches part), the classic false positive of a detector;
* ``scar``: a small stellate opacity, a dense core with 3-5 thin strands (healed inflammation);
* ``atelectasis_band``: plate-like (linear) atelectasis, a thin band 1-3 mm thick and 12-40 mm
  long, in the lower lobes, running in from the pleura;
* ``mucus_plug``: a bronchus segment whose lumen is filled with mucus (drawn by
  :mod:`napari_lungkd.phantom.airways`, recorded here).

They are painted like anatomy and never enter the nodule labels; :func:`record` lists them for
training to sample as hard negatives (``Phantom.lookalikes``), after the nodules are placed, only
those clear of every nodule.
"""

from __future__ import annotations

import numpy as np

from napari_lungkd.phantom.vessel_tree import Tree


def _unit(v):
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-12)


def junction_knots(rng, tree: Tree, n_knots: int, n_plain: int):
    """Bifurcations of 1-3 mm vessels: ``n_knots`` drawn as a ball (returned as tubes of zero
    length) and ``n_plain`` left as they are. Returns ``(balls, items)``: balls ``(centre, r)``
    and one look-alike dict per junction (body frame)."""
    kids = tree.children()
    cand = [p for p, c in kids.items() if len(c) == 2 and 1.0 <= tree.r1[p] <= 3.0]
    if not cand:
        return [], []
    pick = rng.permutation(len(cand))[: n_knots + n_plain]
    balls, items = [], []
    for j, i in enumerate(pick.tolist()):
        par = cand[i]
        r = float(tree.r1[par])
        centre = tree.p1[par]
        if j < n_knots:
            rb = r * rng.uniform(1.2, 1.6)
            # the knot sits a little into the fork, between the two children
            fork = _unit(sum(tree.p1[c] - tree.p0[c] for c in kids[par]))
            centre = centre + fork * 0.5 * rb
            balls.append((centre, rb))
            size = 2.0 * rb
        else:
            size = 2.4 * r
        items.append({"kind": "vessel_junction", "centre_xyz": centre, "size_mm": size})
    return balls, items


def scars(rng, points, border, n: int):
    """``n`` stellate scars at lung points 8 mm or more inside the pleura, upper lungs first.
    Returns tubes ``(p0, p1, r0, r1)`` (lists) and look-alike dicts."""
    tubes: list[tuple] = []
    items = []
    ok = np.flatnonzero(border > 8.0)
    if n == 0 or ok.size == 0:
        return tubes, items
    z = points[ok, 2]
    w = np.exp((z - z.max()) / 80.0)  # apical scars are commoner
    centres = ok[rng.choice(ok.size, size=min(n, ok.size), replace=False, p=w / w.sum())]
    for c in points[centres]:
        core = rng.uniform(0.9, 1.8)
        tubes.append((c, c, core, core))
        reach = 0.0
        for _ in range(int(rng.integers(3, 6))):
            length = rng.uniform(4.0, 12.0)
            d = _unit(rng.normal(size=3))
            mid = c + d * length * 0.5 + rng.normal(0.0, 0.8, 3)
            end = c + d * length
            r = rng.uniform(0.35, 0.8)
            tubes.append((c, mid, r, r * 0.8))
            tubes.append((mid, end, r * 0.8, r * 0.4))
            reach = max(reach, length)
        items.append({"kind": "scar", "centre_xyz": c, "size_mm": 2.0 * reach})
    return tubes, items


def atelectasis_bands(rng, points, border, n: int):
    """``n`` plate-like bands in the lower third of the lungs, from the pleura inwards: a stack
    of thin parallel tubes (a plate). Returns tubes and look-alike dicts."""
    tubes: list[tuple] = []
    items = []
    if n == 0 or len(points) == 0:
        return tubes, items
    z = points[:, 2]
    edge = max(3.0, float(np.percentile(border, 12)))  # the outermost points of a coarse map
    low = np.flatnonzero((border <= edge) & (z < np.percentile(z, 40)))
    if low.size == 0:
        return tubes, items
    centre_lung = points.mean(axis=0)
    for i in rng.choice(low, size=min(n, low.size), replace=False).tolist():
        start = points[i]
        inward = centre_lung - start
        inward[2] = 0.0  # nearly horizontal, as plate atelectasis over the diaphragm
        d = _unit(inward + rng.normal(0.0, 0.3, 3) * np.linalg.norm(inward))
        d[2] = rng.normal(0.0, 0.15)
        d = _unit(d)
        length = rng.uniform(12.0, 40.0)
        height = rng.uniform(3.0, 9.0)  # the plate's width across the band
        thick = rng.uniform(0.5, 1.4)  # half thickness
        across = _unit(np.cross(d, _unit(np.array([rng.normal(0, 0.2), rng.normal(0, 0.2), 1.0]))))
        up = _unit(np.cross(across, d))
        n_lines = max(2, int(np.ceil(height / (1.2 * thick))))
        bend = rng.normal(0.0, 1.5, 3)
        for s in np.linspace(-0.5, 0.5, n_lines):
            a = start + up * s * height - d * 1.0
            m = start + up * s * height + d * length * 0.5 + bend
            b = start + up * s * height + d * length * (1.0 - 0.15 * abs(s))
            tubes.append((a, m, thick, thick))
            tubes.append((m, b, thick, thick * 0.7))
        items.append(
            {"kind": "atelectasis_band", "centre_xyz": start + d * length * 0.5, "size_mm": length}
        )
    return tubes, items


def record(items, grid, origin_lps, spacing_mm, facts, labels, clear_mm: float = 6.0):
    """The look-alikes clear of every nodule, as dicts with ``kind``, ``centre_zyx`` (voxel
    index), ``centre_mm`` (LPS) and ``size_mm``, rounded. A look-alike is dropped when its
    centre lies within ``clear_mm`` plus both sizes of a nodule, or on a labelled voxel."""
    out = []
    sz, pix = spacing_mm[0], spacing_mm[1]
    nodules = [(np.asarray(f.centre_zyx), f.diameter_mm) for f in facts]
    for it in items:
        zyx = np.asarray(grid.to_index(it["centre_xyz"]), float)
        k, j, i = np.round(zyx).astype(int)
        if not (0 <= k < labels.shape[0] and 0 <= j < labels.shape[1] and 0 <= i < labels.shape[2]):
            continue
        if labels[k, j, i]:
            continue
        size = float(it["size_mm"])
        near = False
        for c, dia in nodules:
            dist = np.linalg.norm((zyx - c) * np.asarray((sz, pix, pix)))
            if dist < clear_mm + 0.5 * (dia + size):
                near = True
        if near:
            continue
        lps = (
            origin_lps[0] + zyx[2] * pix,
            origin_lps[1] + zyx[1] * pix,
            origin_lps[2] + zyx[0] * sz,
        )
        out.append(
            {
                "kind": it["kind"],
                "centre_zyx": tuple(round(float(v), 2) for v in zyx),
                "centre_mm": tuple(round(float(v), 3) for v in lps),
                "size_mm": round(size, 2),
            }
        )
    return tuple(out)
