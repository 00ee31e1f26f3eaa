"""Metrics on tiny arrays whose answers are worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_lungkd.scoring.metrics import (
    dice,
    hd95_mm,
    iou,
    match_lesions,
    mean_surface_distance_mm,
    reader_vs_reader_dice,
    summarise_matches,
    surface_distances_mm,
)


def vol(shape, *boxes):
    v = np.zeros(shape, dtype=bool)
    for b in boxes:
        v[b] = True
    return v


def test_dice_and_iou_hand_computed():
    a = np.array([[[1, 1, 0, 0]]])
    b = np.array([[[0, 1, 1, 0]]])
    assert dice(a, b) == pytest.approx(2 * 1 / (2 + 2))
    assert iou(a, b) == pytest.approx(1 / 3)
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0


def test_empty_conventions():
    e = np.zeros((2, 3, 4), bool)
    f = e.copy()
    f[0, 0, 0] = True
    assert dice(e, e) == 1.0 and iou(e, e) == 1.0  # nothing to find, nothing found
    assert dice(e, f) == 0.0 and iou(f, e) == 0.0
    assert hd95_mm(e, e, (1, 1, 1)) == 0.0 and mean_surface_distance_mm(e, e, (1, 1, 1)) == 0.0
    assert math.isinf(hd95_mm(e, f, (1, 1, 1))) and math.isinf(
        mean_surface_distance_mm(f, e, (1, 1, 1))
    )


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        dice(np.zeros((2, 2)), np.zeros((2, 3)))


def test_single_voxels_distance_uses_spacing():
    a = vol((1, 1, 5), np.s_[0, 0, 0])
    b = vol((1, 1, 5), np.s_[0, 0, 3])
    # 3 voxels apart along x, 2 mm per voxel along x
    assert hd95_mm(a, b, (5.0, 7.0, 2.0)) == pytest.approx(6.0)
    assert mean_surface_distance_mm(a, b, (5.0, 7.0, 2.0)) == pytest.approx(6.0)


def test_lines_hand_computed():
    # a = x 0..2, b = x 2..4 on one row; every voxel of a 1-voxel-thick line is surface.
    a = vol((1, 1, 6), np.s_[0, 0, 0:3])
    b = vol((1, 1, 6), np.s_[0, 0, 2:5])
    d_ab, d_ba = surface_distances_mm(a, b, (1.0, 1.0, 0.5))
    assert sorted(d_ab) == pytest.approx([0.0, 0.5, 1.0])
    assert sorted(d_ba) == pytest.approx([0.0, 0.5, 1.0])
    # 95th percentile of [0, 0.5, 1] by linear interpolation: 0.5 + 0.9 * 0.5
    assert hd95_mm(a, b, (1.0, 1.0, 0.5)) == pytest.approx(0.95)
    assert mean_surface_distance_mm(a, b, (1.0, 1.0, 0.5)) == pytest.approx(0.5)


def test_surface_of_a_solid_cube_skips_its_core():
    # 3x3x3 cube vs the same cube: every surface voxel is at distance 0
    a = vol((5, 5, 5), np.s_[1:4, 1:4, 1:4])
    d_ab, _ = surface_distances_mm(a, a, (1, 1, 1))
    assert len(d_ab) == 26 and d_ab.max() == 0.0  # 27 voxels minus the hidden centre
    assert hd95_mm(a, a, (1, 1, 1)) == 0.0


def test_cropping_does_not_change_the_answer():
    small_a = vol((4, 6, 6), np.s_[1:3, 1:4, 1:3])
    small_b = vol((4, 6, 6), np.s_[1:2, 2:5, 2:5])
    big_a = np.zeros((40, 60, 60), bool)
    big_b = np.zeros((40, 60, 60), bool)
    big_a[20:24, 30:36, 30:36] = small_a
    big_b[20:24, 30:36, 30:36] = small_b
    sp = (2.5, 0.7, 0.7)
    assert hd95_mm(big_a, big_b, sp) == pytest.approx(hd95_mm(small_a, small_b, sp))
    assert mean_surface_distance_mm(big_a, big_b, sp) == pytest.approx(
        mean_surface_distance_mm(small_a, small_b, sp)
    )


def lesion_case():
    shape = (3, 10, 10)
    ref = np.zeros(shape, np.int32)
    ref[1, 1:3, 1:3] = 1  # nodule 1: 4 voxels
    ref[1, 7:9, 7:9] = 2  # nodule 2: 4 voxels, missed
    pred = vol(shape, np.s_[1, 1, 1:3], np.s_[1, 5, 5])  # 2 voxels in nodule 1 + a stray voxel
    return pred, ref


def test_match_lesions_counts_and_per_nodule_dice():
    pred, ref = lesion_case()
    m = match_lesions(pred, ref, (1, 1, 1))
    assert (m.tp, m.fn, m.fp) == (1, 1, 1)
    assert m.sensitivity == 0.5 and m.fp_per_scan == 1.0
    assert m.nodule_dice[1] == pytest.approx(2 * 2 / (4 + 2))
    assert m.nodule_dice[2] == 0.0


def test_match_lesions_accepts_a_list_of_masks_and_two_components_on_one_nodule():
    pred, ref = lesion_case()
    masks = [ref == 1, ref == 2]
    assert match_lesions(pred, masks).to_dict() == match_lesions(pred, ref).to_dict()
    pred2 = vol(pred.shape, np.s_[1, 1, 1], np.s_[1, 2, 3:5])  # two separate components
    m = match_lesions(pred2, ref)
    # (1,1,1) is in nodule 1; (1,2,3..4) is outside it -> a false positive; nodule 1 Dice 2*1/(4+1)
    assert (m.tp, m.fp) == (1, 1) and m.nodule_dice[1] == pytest.approx(0.4)
    pred3 = vol(pred.shape, np.s_[0, 1, 1], np.s_[2, 2, 2])  # above and below nodule 1 (z=1)
    m3 = match_lesions(pred3, ref)
    assert (m3.tp, m3.fn, m3.fp) == (0, 2, 2)  # touching diagonally across slices is not overlap


def test_summarise_matches_pools_scans():
    pred, ref = lesion_case()
    m1 = match_lesions(pred, ref)
    m2 = match_lesions(ref > 0, ref)  # perfect: 2 TP, no FP
    s = summarise_matches([m1, m2])
    assert (s["tp"], s["fn"], s["fp"]) == (3, 1, 1)
    assert s["sensitivity"] == 0.75 and s["fp_per_scan"] == 0.5
    assert s["mean_nodule_dice"] == pytest.approx((2 / 3 + 0 + 1 + 1) / 4)


def test_reader_vs_reader_dice():
    r1 = np.array([[[1, 1, 1, 1, 0, 0]]])
    r2 = np.array([[[0, 1, 1, 1, 1, 0]]])
    r3 = np.array([[[0, 0, 0, 0, 0, 0]]])
    agree = reader_vs_reader_dice([r1, r2, r3])
    assert agree.pairs[(0, 1)] == pytest.approx(2 * 3 / 8)
    assert agree.pairs[(0, 2)] == 0.0 and agree.pairs[(1, 2)] == 0.0
    assert agree.mean == pytest.approx(0.25)
    assert reader_vs_reader_dice([r3, r3]).pairs == {}  # both empty: no information


def test_dice_from_counts_is_the_dice_of_the_pooled_masks():
    """Pooled (global) Dice over several scans, from counts, is the Dice of the masks laid side by
    side; it is what training's validation and src_training's results table report."""
    from napari_lungkd.scoring.metrics import dice_from_counts

    rng = np.random.default_rng(0)
    pairs = [(rng.random((3, 5, 7)) > 0.6, rng.random((3, 5, 7)) > 0.7) for _ in range(4)]
    pairs.append((np.zeros((3, 5, 7), bool), np.zeros((3, 5, 7), bool)))
    counts = np.sum([[(a & b).sum(), a.sum(), b.sum()] for a, b in pairs], axis=0)
    side_by_side = dice(
        np.concatenate([a for a, _ in pairs]), np.concatenate([b for _, b in pairs])
    )
    assert dice_from_counts(*counts) == pytest.approx(side_by_side)
    for a, b in pairs:
        assert dice_from_counts((a & b).sum(), a.sum(), b.sum()) == dice(a, b)
    assert dice_from_counts(0, 0, 0) == 1.0 and dice_from_counts(0, 3, 0) == 0.0
