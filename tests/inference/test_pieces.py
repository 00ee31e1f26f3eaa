"""The pieces of one nodule (inference/pieces.py), on small synthetic masks with CT-like spacing:
near pieces and stacked caps merge, in millimetres; separate objects stay apart; and the table,
the labelled mask and the lesion scores count the merged nodule once."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_lungkd.inference.nodules import find_nodules, label_nodules
from napari_lungkd.inference.pieces import MERGE_GAP_MM, group_pieces
from napari_lungkd.scoring.metrics import match_lesions

CT_SPACING = (2.5, 0.7, 0.7)


def blob(mask, z, y, x, size=(2, 6, 6)):
    mask[z : z + size[0], y : y + size[1], x : x + size[2]] = True


def test_two_blobs_one_slice_apart_are_one_nodule():
    mask = np.zeros((10, 40, 40), bool)
    blob(mask, 1, 10, 10)  # slices 1-2
    blob(mask, 4, 10, 12)  # slices 4-5: one empty slice (3), 2.5 mm
    (nod,) = find_nodules(mask, CT_SPACING)
    assert nod.n_pieces == 2 and nod.n_voxels == 2 * 72 and nod.n_slices == 4
    assert nod.bbox == (1, 10, 10, 6, 16, 18)
    # without the merge they are two rows
    nods, labels = label_nodules(mask, CT_SPACING, merge_gap_mm=0, stacked_overlap=None)
    assert len(nods) == 2 and labels.max() == 2


def test_two_blobs_15_mm_apart_stay_two_nodules():
    mask = np.zeros((10, 60, 60), bool)
    blob(mask, 2, 10, 10)
    blob(mask, 2, 10, 10 + 6 + 21)  # 21 empty pixels of 0.7 mm: 14.7 mm of gap
    nods = find_nodules(mask, CT_SPACING)
    assert [n.n_pieces for n in nods] == [1, 1]


@pytest.mark.parametrize(
    ("spacing", "empty_slices", "merged"),
    [
        ((2.5, 0.7, 0.7), 1, True),  # 2.5 mm
        ((2.5, 0.7, 0.7), 2, False),  # 5 mm
        ((1.0, 0.7, 0.7), 2, True),  # the same two slices on a 1 mm CT: 2 mm
        ((1.0, 0.7, 0.7), 3, True),  # 3 mm: the limit, inclusive
        ((1.0, 0.7, 0.7), 4, False),  # 4 mm
    ],
)
def test_a_gap_along_z_is_measured_in_mm(spacing, empty_slices, merged):
    mask = np.zeros((12, 30, 30), bool)
    blob(mask, 1, 10, 10, size=(2, 4, 4))  # small footprints: the stacked rule does not apply
    blob(mask, 3 + empty_slices, 10, 10, size=(2, 4, 4))
    _, n, _ = group_pieces(mask, spacing, stacked_overlap=None)
    assert (n == 1) is merged


def test_in_plane_and_diagonal_gaps_use_the_in_plane_spacing():
    mask = np.zeros((8, 40, 40), bool)
    blob(mask, 2, 10, 10, size=(3, 5, 5))
    blob(mask, 2, 10, 15 + 4, size=(3, 5, 5))  # 4 empty pixels: 2.8 mm
    assert group_pieces(mask, CT_SPACING)[1] == 1
    mask[:, :, 19] = False  # 5 empty pixels: 3.5 mm
    assert group_pieces(mask, CT_SPACING)[1] == 2
    diag = np.zeros((8, 40, 40), bool)
    diag[1, 5, 5] = diag[3, 5, 9] = True  # one empty slice and 3 empty pixels: |(2.5, 2.1)| 3.3
    assert group_pieces(diag, CT_SPACING)[1] == 2
    diag[3, 5, 9], diag[3, 5, 8] = False, True  # |(2.5, 1.4)| = 2.9 mm
    assert group_pieces(diag, CT_SPACING)[1] == 1
    assert MERGE_GAP_MM == 3.0


def sphere(shape, centre, radius_mm, spacing):
    grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing)) <= radius_mm**2


def test_the_top_and_bottom_of_a_nodule_with_its_core_missed_are_one_nodule():
    """What the U-Net does on LIDC-IDRI-0001: the partial-volume caps found, the solid core not."""
    ball = sphere((16, 60, 60), (8, 30, 30), 12.0, CT_SPACING)
    caps = ball.copy()
    caps[7:10] = False  # three slices (7.5 mm) missing through the middle
    (nod,) = find_nodules(caps, CT_SPACING)
    assert nod.n_pieces == 2 and nod.n_voxels == caps.sum()
    assert nod.centroid_zyx[0] == pytest.approx(8.0, abs=0.6)
    assert len(label_nodules(caps, CT_SPACING, stacked_overlap=None)[0]) == 2  # 7.5 mm: not near
    # two thin vessel cross-sections stacked as far apart are two objects (narrower than the gap)
    thin = np.zeros_like(caps)
    thin[2:5, 10:13, 10:13] = thin[8:11, 10:13, 10:13] = True
    assert len(find_nodules(thin, CT_SPACING, min_volume_mm3=0)) == 2
    # stacked pieces that share little of their footprint are not one object
    side = np.zeros_like(caps)
    blob(side, 2, 10, 10, size=(3, 16, 16))
    blob(side, 8, 10, 22, size=(3, 16, 16))  # overlaps 4 of 16 columns: a quarter
    assert len(find_nodules(side, CT_SPACING)) == 2


def test_the_labelled_mask_and_the_lesion_score_count_a_merged_nodule_once():
    mask = np.zeros((12, 40, 40), bool)
    blob(mask, 1, 10, 10)
    blob(mask, 4, 10, 12)  # one nodule of two pieces
    blob(mask, 8, 30, 30, size=(2, 5, 5))  # a second nodule far away
    nods, labels = label_nodules(mask, CT_SPACING)
    assert [n.n_pieces for n in nods] == [2, 1] and int(labels.max()) == 2
    for n in nods:
        assert int((labels == n.label).sum()) == n.n_voxels
    reference = np.zeros(mask.shape, np.int32)
    reference[1:6, 9:17, 9:19] = 1  # the readers' nodule spans both pieces
    scored = match_lesions(labels, reference, CT_SPACING)
    assert (scored.tp, scored.fn, scored.fp) == (1, 0, 1)
    assert scored.matched == {1: (1,)} and scored.false_positive_components == (2,)
    # a binary mask is still scored by its 26-connected components: the pieces count apart
    assert match_lesions(mask, reference, CT_SPACING).matched == {1: (1, 2)}


def test_a_nodule_of_two_kept_candidates_scores_as_its_best_piece():
    from napari_lungkd.inference.candidates import Candidate, Candidates
    from napari_lungkd.inference.fp_reduction import Triage, nodules_and_mask

    cand = np.zeros((10, 40, 40), np.int32)
    cand[1:3, 10:16, 10:16] = 1
    cand[4:6, 10:16, 12:18] = 2  # one empty slice below 1: the same nodule
    cand[2:4, 30:36, 30:36] = 3  # another, scored lower
    items = tuple(Candidate(k, (0, 0, 0, 1, 1, 1), (0.0, 0.0, 0.0)) for k in (1, 2, 3))
    t = Triage(Candidates(cand, items, 0.3, True), np.array([0.4, 0.9, 0.6]), threshold=0.3)
    ct = SimpleNamespace(spacing_mm=CT_SPACING)
    nodules, labels = nodules_and_mask(cand > 0, ct, None, None, 4.2, triage_result=t)
    assert [(n.label, n.n_pieces, n.score) for n in nodules] == [(1, 2, 0.9), (2, 1, 0.6)]
    assert set(np.unique(labels[cand == 1])) == set(np.unique(labels[cand == 2])) == {1}
