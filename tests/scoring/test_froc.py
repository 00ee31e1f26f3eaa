"""FROC, CPM and the LUNA16 hit rule on hand-built scans whose answers are worked out in comments."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lidc_xml_builders import fake_ct, lidc_xml, nodule_xml, non_nodule_xml, roi_xml, session_xml
from lidc_xml_builders import square as square_outline

from napari_lungkd.errors import LidcXmlError
from napari_lungkd.files import to_json_text
from napari_lungkd.lidc import annotate
from napari_lungkd.scoring.froc import LUNA16_FP_RATES, froc, froc_curve
from napari_lungkd.scoring.hits import (
    IrrelevantFinding,
    Reference,
    ScanCase,
    ScoredCandidate,
    candidates_from_mask,
    score_scan,
)
from napari_lungkd.scoring.reference import POINT_RADIUS_MM, lidc_truth

ISO = (1.0, 1.0, 1.0)


def cand(zyx, score, label=None):
    return ScoredCandidate(tuple(float(v) for v in zyx), score, label)


def two_scans(extra_a=(), irrelevant_a=()):
    """Scan A: R1 (10 mm) found twice (0.9, 0.3), R2 (6 mm) missed, FPs 0.8 and 0.4.
    Scan B: R3 (8 mm) found (0.6), FPs 0.7 and 0.2, and 0.5 at 4.5 mm from R3 (radius 4: an FP)."""
    a = ScanCase(
        ISO,
        candidates=(
            cand((10, 10, 12), 0.9),
            cand((10, 13, 10), 0.3),
            cand((50, 50, 50), 0.8),
            cand((60, 10, 10), 0.4),
            *extra_a,
        ),
        references=(Reference((10, 10, 10), 10.0), Reference((10, 40, 40), 6.0)),
        irrelevant=tuple(irrelevant_a),
        name="A",
    )
    b = ScanCase(
        ISO,
        candidates=(
            cand((20, 20, 20), 0.6),
            cand((70, 70, 70), 0.7),
            cand((5, 5, 5), 0.2),
            cand((20, 20, 24.5), 0.5),
        ),
        references=(Reference((20, 20, 20), 8.0),),
        name="B",
    )
    return [a, b]


def test_hand_built_froc_sensitivities_and_cpm():
    res = froc(two_scans(), bootstrap=0)
    # pooled entries, by score: .9 hit, .8 FP, .7 FP, .6 hit, .5 FP, .4 FP, .2 FP; 3 nodules, 2 scans
    # operating points (FP/scan, sens): (0,0) (0,1/3) (.5,1/3) (1,1/3) (1,2/3) (1.5,2/3) (2,2/3)
    # (2.5,2/3). At 1/8, 1/4, 1/2: 1/3; at 1 (the point of the .6 hit) and beyond: 2/3
    third, two_thirds = 1 / 3, 2 / 3
    assert res.fp_rates == LUNA16_FP_RATES
    assert res.sensitivities == pytest.approx([third] * 3 + [two_thirds] * 4)
    assert res.cpm == pytest.approx((3 * third + 4 * two_thirds) / 7)  # 11/21
    assert res.cpm == pytest.approx(11 / 21)
    assert (res.n_scans, res.n_references, res.n_found, res.n_missed) == (2, 3, 2, 1)
    assert res.n_false_positives == 5 and res.n_ignored == 0
    np.testing.assert_allclose(res.curve.fp_per_scan, [0, 0, 0.5, 1, 1, 1.5, 2, 2.5])
    np.testing.assert_allclose(res.curve.sensitivity, [0, 1, 1, 1, 2, 2, 2, 2] / np.float64(3))
    # LUNA16 reads the sensitivities with np.interp over these points
    assert res.sensitivities == pytest.approx(
        np.interp(LUNA16_FP_RATES, res.curve.fp_per_scan, res.curve.sensitivity)
    )
    # the lowest threshold at 1 FP/scan keeps the 0.6 hit; at 1/2 FP/scan, the 0.8 FP is the last
    assert res.curve.threshold_at(1.0) == 0.6 and res.curve.threshold_at(0.5) == 0.8
    assert res.curve.threshold_at(0.1) == 0.9


def test_two_candidates_on_one_nodule_count_once_with_the_highest_score():
    a = score_scan(two_scans()[0])
    assert a.reference_scores == (0.9, None)
    assert a.reference_candidates == (0, None)
    assert a.n_double == 1  # the 0.3 candidate on R1: neither a hit nor a false positive
    assert sorted(a.false_positive_scores) == [0.4, 0.8]


def test_a_candidate_on_an_irrelevant_finding_changes_nothing():
    base = froc(two_scans(), bootstrap=0)
    on_point = cand((30, 30, 30), 0.95)
    finding = IrrelevantFinding((30, 30, 33), POINT_RADIUS_MM, kind="non_nodule")
    res = froc(two_scans(extra_a=[on_point], irrelevant_a=[finding]), bootstrap=0)
    assert res.sensitivities == base.sensitivities and res.cpm == base.cpm
    assert res.n_false_positives == base.n_false_positives and res.n_ignored == 1
    # without the finding the same candidate is the top false positive: 1/8..1/2 FP/scan lose
    worse = froc(two_scans(extra_a=[on_point]), bootstrap=0)
    assert worse.n_false_positives == 6 and worse.cpm < base.cpm


def test_a_candidate_just_outside_the_radius_is_a_false_positive():
    ref = (Reference((0, 0, 0), 8.0),)
    # 4.5 mm off a 4 mm radius (in z, with 2.5 mm slices: 1.8 slices)
    out = score_scan(
        ScanCase((2.5, 0.7, 0.7), candidates=(cand((1.8, 0, 0), 0.5),), references=ref)
    )
    assert out.reference_scores == (None,) and out.false_positive_scores == (0.5,)
    inside = score_scan(
        ScanCase((2.5, 0.7, 0.7), candidates=(cand((1.5, 0, 0), 0.5),), references=ref)
    )
    assert inside.reference_scores == (0.5,) and inside.false_positive_scores == ()
    # on the radius exactly: LUNA16 counts a hit only strictly inside (dist < radius)
    edge = score_scan(ScanCase(ISO, candidates=(cand((4, 0, 0), 0.5),), references=ref))
    assert edge.reference_scores == (None,)


def test_a_scan_without_nodules_counts_its_false_positives():
    empty = ScanCase(ISO, candidates=(cand((1, 1, 1), 0.9), cand((9, 9, 9), 0.1)), name="empty")
    one = ScanCase(ISO, candidates=(cand((0, 0, 0), 0.5),), references=(Reference((0, 0, 0), 6),))
    res = froc([empty, one], bootstrap=0)
    # .9 FP (0.5/scan, sens 0), .5 hit (0.5, 1), .1 FP (1, 1): at 1/8 and 1/4 nothing is found yet
    assert res.sensitivities == pytest.approx([0, 0, 1, 1, 1, 1, 1])
    assert res.n_false_positives == 2 and res.scans[0].n_references == 0


def test_no_candidates_gives_sensitivity_zero():
    scans = [ScanCase(ISO, references=(Reference((5, 5, 5), 6),)), ScanCase(ISO)]
    res = froc(scans, bootstrap=10)
    assert res.sensitivities == (0.0,) * 7 and res.cpm == 0.0
    assert res.n_missed == 1 and res.bootstrap.cpm_upper == 0.0


def test_no_reference_anywhere_leaves_sensitivity_undefined():
    res = froc([ScanCase(ISO, candidates=(cand((1, 1, 1), 0.9),))], bootstrap=10)
    assert res.cpm is None and res.sensitivities == (None,) * 7 and res.bootstrap is None
    json.loads(to_json_text(res.to_dict()))  # no NaN sneaks into the JSON


def test_tied_scores_are_interpolated_linearly_as_luna16():
    # one scan: a hit and two FPs all at 0.5 -> the curve jumps from (0, 0) to (2, 1) in one step
    scan = ScanCase(
        ISO,
        candidates=(cand((0, 0, 0), 0.5), cand((20, 0, 0), 0.5), cand((40, 0, 0), 0.5)),
        references=(Reference((0, 0, 0), 6),),
    )
    res = froc([scan], bootstrap=0)
    assert res.sensitivities == pytest.approx([1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 1, 1])
    assert res.sensitivities == pytest.approx(
        np.interp(LUNA16_FP_RATES, res.curve.fp_per_scan, res.curve.sensitivity)
    )


def test_froc_curve_of_nothing():
    c = froc_curve([], [], 3, 2)
    assert list(c.fp_per_scan) == [0.0] and list(c.sensitivity) == [0.0]
    assert list(c.sensitivity_at([0.125, 8])) == [0.0, 0.0]
    with pytest.raises(ValueError):
        froc_curve([], [], 1, 0)


def test_bootstrap_is_reproducible_with_a_seed():
    scans = two_scans() * 3  # six scans
    one = froc(scans, bootstrap=200, seed=7)
    two = froc(scans, bootstrap=200, seed=7)
    other = froc(scans, bootstrap=200, seed=8)
    assert one.bootstrap == two.bootstrap
    assert one.bootstrap != other.bootstrap
    b = one.bootstrap
    assert b.samples == 200 and b.used == 200 and b.seed == 7
    assert b.cpm_lower <= b.cpm_mean <= b.cpm_upper
    assert b.cpm_lower <= one.cpm <= b.cpm_upper
    assert all(lo <= hi for lo, hi in zip(b.sensitivity_lower, b.sensitivity_upper))
    assert len(b.band_rates) == len(b.band_lower) == len(b.band_upper)


def labelled(shape, *boxes):
    v = np.zeros(shape, dtype=np.int32)
    for i, b in enumerate(boxes, start=1):
        v[b] = i
    return v


def test_overlap_rule_with_masks_and_dice_of_found_nodules_apart_from_misses():
    shape = (10, 20, 20)
    refs = labelled(shape, np.s_[2:6, 2:6, 2:6], np.s_[2:4, 14:16, 14:16])
    # candidate 1 covers half of nodule 1 (32 of its 64 voxels): Dice 2*32/(64+32) = 2/3;
    # candidate 2 is a long blob touching nodule 1's corner only, centre far away: with masks it
    # hits (one shared voxel), by the centre rule it is an FP; candidate 3 is off everything
    cands = labelled(shape, np.s_[2:4, 2:6, 2:6], np.s_[5:6, 5:20, 5:6], np.s_[8:10, 8:10, 8:10])
    cs = (cand((2.5, 3.5, 3.5), 0.9, 1), cand((5, 12, 5), 0.4, 2), cand((8.5, 8.5, 8.5), 0.7, 3))
    rs = (Reference((3.5, 3.5, 3.5), 4.0, 1), Reference((2.5, 14.5, 14.5), 2.0, 2))
    case = ScanCase(ISO, cs, rs, candidate_labels=cands, reference_labels=refs)
    by_mask = score_scan(case)
    assert by_mask.reference_scores == (0.9, None)
    assert by_mask.n_double == 1 and by_mask.false_positive_scores == (0.7,)
    assert by_mask.nodule_dice == (pytest.approx(2 / 3), None)
    by_centre = score_scan(case, rule="centre")
    assert by_centre.reference_scores == (0.9, None)
    assert sorted(by_centre.false_positive_scores) == [0.4, 0.7]
    res = froc([case], bootstrap=0)
    d = res.dice_summary()
    assert d["found"] == 1 and d["missed"] == 1 and d["mean_dice"] == pytest.approx(2 / 3)
    # at a threshold above the best candidate's score the nodule counts as missed
    assert res.dice_summary(threshold=0.95)["found"] == 0
    assert res.dice_summary(threshold=0.95)["mean_dice"] is None
    with pytest.raises(ValueError, match="overlap"):
        score_scan(ScanCase(ISO, (cand((0, 0, 0), 1.0),), rs, reference_labels=refs), "overlap")


def test_irrelevant_region_by_overlap():
    shape = (4, 10, 10)
    irr = labelled(shape, np.s_[1:3, 1:3, 1:3])
    cands = labelled(shape, np.s_[2:4, 2:8, 2:8])
    case = ScanCase(
        ISO,
        (cand((3, 5, 5), 0.8, 1),),
        irrelevant=(IrrelevantFinding((1.5, 1.5, 1.5), 1.0, 1, "below_consensus"),),
        candidate_labels=cands,
        irrelevant_labels=irr,
    )
    s = score_scan(case)
    assert s.n_ignored == 1 and s.false_positive_scores == ()
    assert score_scan(case, rule="centre").false_positive_scores == (0.8,)


def test_candidates_from_mask():
    mask = np.zeros((5, 10, 10), dtype=bool)
    mask[1:3, 1:3, 1:3] = True
    mask[4, 8, 8] = True
    prob = np.where(mask, 0.6, 0.0)
    prob[4, 8, 8] = 0.95
    cands, labels = candidates_from_mask(mask, prob)
    assert [c.score for c in cands] == [0.6, 0.95]
    assert cands[0].centre_zyx == (1.5, 1.5, 1.5) and labels[4, 8, 8] == cands[1].label
    assert candidates_from_mask(np.zeros((2, 2, 2)))[0] == ()


def test_result_to_dict_is_json_and_text_reads():
    res = froc(two_scans(), bootstrap=20, seed=1)
    doc = json.loads(to_json_text(res.to_dict()))
    assert doc["cpm"] == pytest.approx(11 / 21) and doc["references"] == 3
    assert doc["curve"]["threshold"][0] is None  # the (0, 0) point: nothing kept
    assert [s["name"] for s in doc["per_scan"]] == ["A", "B"]
    assert "CPM 0.524" in res.text()


def test_plot_froc_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from napari_lungkd.scoring.froc_plot import plot_froc

    res = froc(two_scans(), bootstrap=20)
    out = plot_froc({"student": res, "teacher": froc(two_scans(), bootstrap=0)}, tmp_path / "f.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


# --------------------------------------------------------------------------------------------
# LIDC: references and irrelevant findings from the readers' marks


def lidc_case_xml():
    """fake_ct: slices at z -15, -12.5, -10, -7.5, -5 mm; 0.5 mm pixels.

    * nodule P: a 10-pixel square (diagonal 7.07 mm) at -10 mm by readers 1, 2 and 3 -> reference;
    * nodule Q: a 10-pixel square at (200, 200) by readers 1 and 2 -> irrelevant (2 readers);
    * reader 3's small-nodule point at (50, 60) on -12.5 mm and reader 2's non-nodule at (30, 40)
      on -7.5 mm -> irrelevant points; a non-nodule at -30 mm is on no slice -> a warning.
    """
    p = [nodule_xml(f"P{i}", [roi_xml(-10.0, square_outline(100, 100, 10))]) for i in range(3)]
    q = [nodule_xml(f"Q{i}", [roi_xml(-10.0, square_outline(200, 200, 10))]) for i in range(2)]
    small = nodule_xml("s", [roi_xml(-12.5, [(50, 60)])], chars=None)
    return lidc_xml(
        [
            session_xml([p[0], q[0]], [non_nodule_xml("far", -30.0, 10, 10)]),
            session_xml([p[1], q[1]], [non_nodule_xml("nn", -7.5, 30, 40)]),
            session_xml([p[2], small]),
        ]
    )


def test_lidc_truth_references_and_irrelevant_findings():
    ct = fake_ct()
    truth = lidc_truth(annotate(lidc_case_xml().encode(), ct=ct))
    (ref,) = truth.references
    assert ref.centre_zyx == pytest.approx((2.0, 105.0, 105.0))  # interior 101..109
    assert ref.diameter_mm == pytest.approx(10 * np.sqrt(2) * 0.5)
    assert truth.reference_labels[2, 105, 105] == ref.label and truth.spacing_mm == (2.5, 0.5, 0.5)
    kinds = sorted(f.kind for f in truth.irrelevant)
    assert kinds == ["below_consensus", "non_nodule", "reference_outline", "small_nodule"]
    by_kind = {f.kind: f for f in truth.irrelevant}
    assert by_kind["small_nodule"].centre_zyx == (1.0, 60.0, 50.0)
    assert by_kind["non_nodule"].centre_zyx == (3.0, 40.0, 30.0)
    assert by_kind["non_nodule"].radius_mm == POINT_RADIUS_MM == 5.0
    q = by_kind["below_consensus"]
    assert truth.irrelevant_labels[2, 205, 205] == q.label
    assert len(truth.warnings) == 1 and "'far'" in truth.warnings[0]
    json.loads(to_json_text(truth.to_dict()))

    # candidates: on P (hit), on Q (ignored), 2 mm from the non-nodule (ignored), far away (FP)
    cands = (
        cand((2, 105, 105), 0.9),
        cand((2, 205, 205), 0.8),
        cand((3, 40, 34), 0.7),
        cand((0, 10, 240), 0.6),
    )
    s = score_scan(truth.case(cands, name="0001"))
    assert s.reference_scores == (0.9,) and s.n_ignored == 2
    assert s.false_positive_scores == (0.6,) and s.name == "0001"


def test_lidc_truth_needs_the_ct_grid():
    with pytest.raises(LidcXmlError, match="voxel size"):
        lidc_truth(annotate(lidc_case_xml().encode()))
