"""The varied phantom's vessel trees on a synthetic lung: continuous, Murray-tapered, space-filling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

from napari_lungkd.phantom.vessel_tree import grow_tree, lung_points, murray_residuals

SPACING = np.array([3.0, 3.0, 3.0])  # z y x, mm
START = np.array([0.0, -90.0, 0.0])


@pytest.fixture(scope="module")
def lung_tree():
    """An ellipsoidal 'lung' (240 x 180 x 120 mm), two lobes split at Z = 120 mm."""
    zz, yy, xx = np.mgrid[0:80, 0:60, 0:40]
    lung = ((zz - 40) / 40.0) ** 2 + ((yy - 30) / 30.0) ** 2 + ((xx - 20) / 20.0) ** 2 < 1
    border = distance_transform_edt(np.pad(lung, 1), sampling=SPACING)[1:-1, 1:-1, 1:-1]

    def inside(q):
        i = np.round((q[:, ::-1] - START) / SPACING).astype(int)
        ok = np.all((i >= 0) & (i < lung.shape), axis=1)
        out = np.zeros(len(q), bool)
        out[ok] = lung[tuple(i[ok].T)]
        return out

    rng = np.random.default_rng(7)
    pts, bd = lung_points(rng, lung, START, SPACING, border, 3000)
    lobes = (pts[:, 2] > 120.0).astype(int)
    tree = grow_tree(rng, pts, bd, lobes, np.array([2.0, 0.0, 120.0]), 7.0, inside)
    return lung, border, tree, lobes, pts


def test_the_tree_is_continuous_from_the_root(lung_tree):
    _, _, tree, _, _ = lung_tree
    assert len(tree) > 1000
    roots = np.flatnonzero(tree.parent < 0)
    assert len(roots) == 2  # one trunk per lobe, both from the hilum
    assert np.allclose(tree.p0[roots], [2.0, 0.0, 120.0])
    kids = tree.parent >= 0
    # every branch starts where its parent ends
    assert np.allclose(tree.p0[kids], tree.p1[tree.parent[kids]])
    counts = np.bincount(tree.parent[kids], minlength=len(tree))
    assert (counts == 2).sum() > 0.4 * len(tree)  # bifurcations, not chains


def test_the_radii_follow_murrays_law_and_taper_below_a_millimetre(lung_tree):
    _, _, tree, _, _ = lung_tree
    res = murray_residuals(tree)
    assert len(res) > 500
    # r_parent^3 = r1^3 + r2^3 up to the 3 % radius jitter per child
    assert np.median(np.abs(res)) < 0.06 and np.abs(res).max() < 0.35
    leaves = tree.leaves()
    assert np.median(2 * tree.r1[leaves]) < 1.0  # sub-millimetre calibre at the ends
    assert tree.r0[tree.parent < 0].min() > 4.0
    assert (tree.r1 <= tree.r0 + 1e-12).all()  # each branch tapers


def test_the_vessels_reach_within_a_few_mm_of_the_pleura(lung_tree):
    lung, border, tree, _, _ = lung_tree
    along = np.concatenate([tree.p0 + t * (tree.p1 - tree.p0) for t in np.linspace(0, 1, 6)])
    kd = cKDTree(along)
    shell = np.argwhere(lung & (border <= 4.0))
    d, _ = kd.query((START + shell * SPACING)[:, ::-1])
    # points sampled ~9 mm apart: a vessel within a few mm of most of the pleura
    assert np.median(d) < 8.0 and np.percentile(d, 90) < 14.0
    ends = np.round((tree.p1[tree.leaves()][:, ::-1] - START) / SPACING).astype(int)
    shell_share = (lung & (border <= 4.0)).sum() / lung.sum()
    # the terminal branches end at their territory's point nearest the pleura: they end in the
    # outer 4 mm much more often than that shell's share of the volume
    assert np.mean(border[tuple(ends.T)] <= 4.0) > 1.5 * shell_share


def test_no_branch_crosses_between_lobes(lung_tree):
    _, _, tree, _, _ = lung_tree
    root_of = np.arange(len(tree))
    for _ in range(40):
        up = tree.parent[root_of]
        root_of = np.where(up >= 0, up, root_of)
    upper = tree.p0[:, 2] > 120.0  # every branch of the upper trunk stays above the fissure
    trunk_upper = tree.p1[root_of, 2] > 120.0
    gen1 = tree.generation > 0
    assert (upper[gen1] == trunk_upper[gen1]).mean() > 0.98


def test_the_same_seed_grows_the_same_tree(lung_tree):
    lung, border, tree, lobes, pts = lung_tree

    def inside(q):
        return np.ones(len(q), bool)

    a = grow_tree(
        np.random.default_rng(3), pts, border.ravel()[: len(pts)], lobes, [2, 0, 120], 7, inside
    )
    b = grow_tree(
        np.random.default_rng(3), pts, border.ravel()[: len(pts)], lobes, [2, 0, 120], 7, inside
    )
    assert a.p1.tobytes() == b.p1.tobytes() and a.r1.tobytes() == b.r1.tobytes()
