"""The synthetic chest CT: deterministic, chest-like HU, nodules of every kind with their truth."""

from __future__ import annotations

import numpy as np
import pytest

from napari_lungkd.phantom import make_phantom
from napari_lungkd.phantom.scanner import PADDING_HU, fov_mask


@pytest.fixture(scope="module")
def small():
    return make_phantom(
        11, size=128, n_slices=24, kinds=("solid", "part-solid", "ground-glass", "calcified")
    )


def test_same_seed_gives_identical_bytes():
    a = make_phantom(3, size=64, n_slices=12)
    b = make_phantom(3, size=64, n_slices=12)
    assert a.hu.dtype == np.int16 and a.hu.shape == (12, 64, 64)
    assert a.hu.tobytes() == b.hu.tobytes()
    assert a.labels.tobytes() == b.labels.tobytes()
    assert a.nodules == b.nodules and a.spacing_mm == b.spacing_mm and a.origin_mm == b.origin_mm


def test_different_seeds_give_different_anatomy_and_nodules():
    a = make_phantom(1, size=64, n_slices=12, n_nodules=3)
    b = make_phantom(2, size=64, n_slices=12, n_nodules=3)
    assert a.anatomy.half_width_mm != b.anatomy.half_width_mm
    assert np.mean(a.hu != b.hu) > 0.3
    assert [n.centre_mm for n in a.nodules] != [n.centre_mm for n in b.nodules]


def test_hu_looks_like_a_chest(small):
    hu = small.hu
    inside = fov_mask(128)
    assert (hu[:, ~inside] == PADDING_HU).all()
    body = hu[:, inside]
    lung = body[(body > -950) & (body < -700)]
    assert lung.size > 0.1 * body.size, "lungs should fill a good part of the field of view"
    assert -900 < np.median(lung) < -780
    fat = ((body > -130) & (body < -60)).mean()
    soft = ((body > 0) & (body < 100)).mean()
    bone = (body > 200).mean()
    assert fat > 0.02 and soft > 0.05 and 0.002 < bone < 0.08
    assert (body[body < -900] < -900).mean() > 0.0  # air outside the body


def test_nodules_have_kinds_truth_and_plausible_density(small):
    kinds = {n.kind for n in small.nodules}
    assert len(small.nodules) >= 3 and kinds <= {"solid", "part-solid", "ground-glass", "calcified"}
    for n in small.nodules:
        truth = small.labels == n.label
        assert truth.sum() == n.n_voxels > 0
        z, y, x = np.round(n.centre_zyx).astype(int)
        assert small.labels[z, y, x] in (0, n.label)  # centre may sit in a cavity, never elsewhere
        if n.n_voxels >= 20:  # partial volume dominates smaller ones at 3 mm pixels
            if n.kind == "ground-glass":
                assert -800 < n.mean_hu < -300
            if n.kind in ("solid", "calcified"):
                assert n.mean_hu > -150
        assert n.location in ("isolated", "juxtavascular", "juxtapleural")
        assert n.margin in ("smooth", "lobulated", "spiculated")


def test_nodule_sizes_and_counts_over_many_cases():
    facts = [n for s in range(8) for n in make_phantom(s, size=48, n_slices=8).nodules]
    counts = [len(make_phantom(s, size=48, n_slices=8).nodules) for s in range(8, 16)]
    assert facts, "eight cases should hold some nodules"
    d = np.array([n.diameter_mm for n in facts])
    assert d.min() >= 1.5 and d.max() <= 30.0
    assert max(counts) <= 6


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="size"):
        make_phantom(0, size=8)
    with pytest.raises(ValueError, match="n_slices"):
        make_phantom(0, size=64, n_slices=2)
