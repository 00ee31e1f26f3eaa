"""Candidates in 3-D and their features, on synthetic tubes and balls in a lung-like volume."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_lungkd.inference.candidate_features import FEATURE_NAMES, hessian_shape, measure
from napari_lungkd.inference.candidates import find_candidates
from napari_lungkd.inference.lung_mask import find_lung_mask

SPACING = (2.5, 0.7, 0.7)  # a typical LIDC CT: thick slices, fine pixels
SHAPE = (32, 96, 96)
LUNG_HU, TISSUE_HU = -850.0, 40.0


def _grid(shape=SHAPE, spacing=SPACING):
    zz, yy, xx = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij")
    centre = np.array([(n - 1) * s / 2 for n, s in zip(shape, spacing)])
    return np.stack([zz, yy, xx], -1) - centre


def _soft(distance_mm, radius_mm):
    """Partial volume: 1 inside, 0 outside, a 1 mm ramp at the edge (what a CT kernel gives)."""
    return np.clip(radius_mm - distance_mm + 0.5, 0.0, 1.0)


def ball(radius_mm, shape=SHAPE, spacing=SPACING):
    d = np.linalg.norm(_grid(shape, spacing), axis=-1)
    return _soft(d, radius_mm)


def tube(radius_mm, direction, shape=SHAPE, spacing=SPACING):
    u = np.asarray(direction, float) / np.linalg.norm(direction)
    p = _grid(shape, spacing)
    along = p @ u
    d = np.linalg.norm(p - along[..., None] * u, axis=-1)
    return _soft(d, radius_mm)


def volume_of(fraction):
    return (LUNG_HU + (TISSUE_HU - LUNG_HU) * fraction).astype(np.float32)


def near_centre(radius_mm, shape=SHAPE, spacing=SPACING):
    """What a 2-D U-Net marks on a vessel: the short piece of it around where it crosses the slices."""
    return np.linalg.norm(_grid(shape, spacing), axis=-1) <= radius_mm


# every orientation: along z (end-on in the axial slice), in-plane along y and x, the diagonals
DIRECTIONS = [
    (1, 0, 0),
    (0, 1, 0),
    (0, 0, 1),
    (1, 1, 0),
    (0, 1, 1),
    (1, 1, 1),
    (1, -2, 3),
    (2, 1, -1),
]


def _features(frac, marked):
    hu = volume_of(frac)
    prob = marked.astype(np.float32)
    sub_box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in np.nonzero(marked))
    start = tuple(s.start for s in sub_box)
    return measure(marked[sub_box], start, hu, prob, SPACING)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_vessel_piece_reads_as_a_tube_at_every_orientation(direction):
    f = _features(tube(1.5, direction), near_centre(4.0) & (tube(1.5, direction) > 0.5))
    assert f["tubeness"] > 0.4, f
    assert f["blobness"] < 0.2, f


@pytest.mark.parametrize("radius", [2.0, 3.0, 5.0])
def test_a_ball_reads_as_a_blob_whatever_its_size(radius):
    frac = ball(radius)
    f = _features(frac, frac > 0.5)
    # a 4 mm nodule spans two 2.5 mm slices: less round to the Hessian than a big one, still no tube
    assert f["blobness"] > (0.3 if radius < 3 else 0.5), f
    assert f["tubeness"] < 0.6, f
    assert 0.6 < f["sphericity"] <= 1.05
    assert f["equivalent_diameter_mm"] == pytest.approx(2 * radius, rel=0.25)
    assert f["longest_diameter_mm"] == pytest.approx(2 * radius, rel=0.35)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_the_ball_and_tube_measures_separate_at_every_orientation(direction):
    # the same decision at every angle: a nodule's blobness above any vessel piece's
    t = _features(tube(1.5, direction), near_centre(4.0) & (tube(1.5, direction) > 0.5))
    b = _features(ball(3.0), ball(3.0) > 0.5)
    assert b["blobness"] - t["blobness"] > 0.3


def test_elongation_and_flatness_follow_the_axes():
    frac = tube(1.5, (0, 0, 1))
    marked = (frac > 0.5) & (np.abs(_grid()[..., 2]) < 12.0)  # a 24 mm rod
    f = _features(frac, marked)
    assert f["elongation"] < 0.3 and f["flatness"] < 0.3
    b = _features(ball(4.0), ball(4.0) > 0.5)
    assert b["elongation"] > 0.8 and b["flatness"] > 0.8


def test_hessian_is_flat_on_uniform_lung():
    hu = np.full(SHAPE, LUNG_HU, np.float32)
    blob, tube_ = hessian_shape(hu, np.array([[16, 48, 48]]), SPACING, 1.5)
    assert blob == 0.0 and tube_ == 0.0


def _chest(shape=(24, 128, 128), spacing=(2.5, 0.7, 0.7)):
    """A body (soft tissue) with two lungs (air) and air around it, HU."""
    hu = np.full(shape, -1000.0, np.float32)
    g = _grid(shape, spacing)
    body = (g[..., 1] / 40.0) ** 2 + (g[..., 2] / 42.0) ** 2 < 1.0
    hu[body] = TISSUE_HU
    for cx in (-20.0, 20.0):
        lung = ((g[..., 1]) / 28.0) ** 2 + ((g[..., 2] - cx) / 15.0) ** 2 < 1.0
        hu[lung & body] = LUNG_HU
    return hu, g


def test_lung_mask_keeps_a_juxtapleural_nodule_inside_and_measures_the_border_distance():
    spacing = (2.5, 0.7, 0.7)
    hu, g = _chest(spacing=spacing)
    # a 6 mm nodule on the lateral pleura of the right lung (x = 20 + 15 mm)
    centre = np.array([0.0, 0.0, 33.0])
    nodule = np.linalg.norm(g - centre, axis=-1) < 3.0
    hu[nodule] = TISSUE_HU
    lung = find_lung_mask(hu, spacing)
    assert lung.found
    zyx = np.argwhere(nodule).mean(axis=0)
    assert lung.contains(zyx)
    assert lung.distance_at(zyx) < 4.0
    # the centre of the lung is far from the border
    mid = np.argwhere(np.linalg.norm(g - np.array([0.0, 0.0, 20.0]), axis=-1) < 2.0).mean(axis=0)
    assert lung.distance_at(mid) > 10.0


def test_find_candidates_labels_match_the_items_and_drop_specks():
    hu, g = _chest()
    prob = np.zeros(hu.shape, np.float32)
    a = np.linalg.norm(g - np.array([0.0, 5.0, -20.0]), axis=-1) < 3.0
    b = np.linalg.norm(g - np.array([0.0, -10.0, 20.0]), axis=-1) < 2.5
    hu[a | b] = TISSUE_HU
    prob[a] = 0.9
    prob[b] = 0.4
    prob[2, 10, 10] = 0.99  # a one-voxel speck: below the minimum volume
    cands = find_candidates(prob, hu, (2.5, 0.7, 0.7), threshold=0.3)
    assert len(cands) == 2
    for c in cands.items:
        assert (cands.labels == c.label).sum() > 0
        assert set(c.features) == set(FEATURE_NAMES)
        assert c.features["inside_lung"] == 1.0
    assert cands.labels[2, 10, 10] == 0
    maxes = sorted(c.features["prob_max"] for c in cands.items)
    assert maxes == pytest.approx([0.4, 0.9], abs=1e-6)
    assert cands.matrix().shape == (2, len(FEATURE_NAMES))
    assert np.isfinite(cands.matrix()).all()


def test_find_candidates_on_an_empty_map():
    hu, _ = _chest()
    cands = find_candidates(np.zeros(hu.shape, np.float32), hu, (2.5, 0.7, 0.7))
    assert len(cands) == 0 and cands.matrix().shape == (0, len(FEATURE_NAMES))
    assert not cands.labels.any()


def test_features_are_in_physical_units():
    # the same ball on a fine and a coarse grid measures the same
    fine = (1.0, 0.5, 0.5)
    coarse = (2.5, 0.8, 0.8)
    out = []
    for sp in (fine, coarse):
        shape = tuple(int(math.ceil(30 / s)) for s in sp)
        frac = ball(4.0, shape, sp)
        marked = frac > 0.5
        box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in np.nonzero(marked))
        out.append(
            measure(
                marked[box],
                tuple(s.start for s in box),
                volume_of(frac),
                marked.astype(np.float32),
                sp,
            )
        )
    assert out[0]["volume_mm3"] == pytest.approx(out[1]["volume_mm3"], rel=0.2)
    assert out[0]["equivalent_diameter_mm"] == pytest.approx(
        out[1]["equivalent_diameter_mm"], rel=0.1
    )
