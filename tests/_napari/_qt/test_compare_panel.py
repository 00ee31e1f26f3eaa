"""The comparison numbers the widget shows: checked on tiny arrays with hand-computed answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_lungkd.scoring.comparison import (
    STUDENT_ONLY,
    TEACHER_ONLY,
    compare_models,
    disagreement_labels,
    edit_summary,
    reader_pair_dice,
    rows_to_csv,
)


def _seg(mask, total_s, slices_per_s, n_params):
    from napari_lungkd.inference import Timings

    mask = np.asarray(mask, dtype=np.uint8)
    n = mask.shape[0]
    return SimpleNamespace(
        mask=mask,
        probability=mask.astype(np.float16),
        nodules=[],
        timings=Timings(
            load=0.0,
            backend_setup=0.0,
            lung_region=0.0,
            preprocess=0.0,
            model=n / slices_per_s,
            postprocess=0.0,
            total=total_s,
            slices=n,
            slices_per_s=slices_per_s,
            ms_per_slice=1000.0 / slices_per_s,
        ),
        provenance=SimpleNamespace(model="x", n_parameters=n_params, device="cpu"),
    )


def _box(shape, z, y, x):
    m = np.zeros(shape, np.uint8)
    m[z, y, x] = 1
    return m


SHAPE = (6, 10, 10)


def test_speed_and_agreement_numbers():
    s = _box(SHAPE, slice(1, 3), slice(2, 6), slice(2, 6))  # 32 voxels
    t = _box(SHAPE, slice(1, 3), slice(2, 6), slice(4, 8))  # 32 voxels, 16 shared
    comp = compare_models(
        {"student": _seg(s, 2.0, 50.0, 14_321_000), "teacher": _seg(t, 7.0, 12.5, 67_150_000)}
    )
    assert comp.dice_between == pytest.approx(2 * 16 / 64)
    # model seconds per slice: 1/12.5 vs 1/50 (not the whole-CT seconds 7.0 vs 2.0)
    assert comp.speedup == pytest.approx(4.0)
    student, teacher = comp.models
    assert (student.n_params, teacher.n_params) == (14_321_000, 67_150_000)
    assert (student.seconds, teacher.slices_per_s) == (2.0, 12.5)
    rows = {(r["quantity"], r["model"]): r["value"] for r in comp.rows()}
    assert rows[("speed-up", "student vs teacher")] == 4.0
    assert rows[("Dice", "student vs teacher")] == 0.5
    assert comp.human_ceiling is None and not comp.dice_vs_consensus


def test_scores_against_consensus_and_readers():
    cons = np.zeros(SHAPE, np.uint16)
    cons[1:3, 2:6, 2:6] = 1  # nodule 1 (32 voxels)
    cons[4, 7:9, 7:9] = 2  # nodule 2 (4 voxels), missed by the student
    student = _box(SHAPE, slice(1, 3), slice(2, 6), slice(2, 6))
    student[5, 0, 0] = 1  # a false positive far from both nodules
    r1 = (cons > 0).astype(np.uint8)
    r2 = _box(SHAPE, slice(1, 3), slice(2, 6), slice(2, 4))  # 16 voxels of nodule 1
    comp = compare_models(
        {"student": _seg(student, 1.0, 10.0, 1)},
        consensus=cons,
        reader_masks={"1": r1, "2": r2},
        spacing_mm=(2.5, 0.7, 0.7),
    )
    assert comp.dice_vs_consensus["student"] == pytest.approx(2 * 32 / (33 + 36))
    assert comp.dice_vs_readers["student"]["1"] == pytest.approx(2 * 32 / (33 + 36))
    assert comp.dice_vs_readers["student"]["2"] == pytest.approx(2 * 16 / (33 + 16))
    assert comp.human_ceiling == pytest.approx((2 * 16 / (36 + 16),) * 2)
    c = comp.lesions["student"]
    assert (c.tp, c.fp, c.fn) == (1, 1, 1)
    csv_text = rows_to_csv(comp.rows())
    assert csv_text.splitlines()[0] == "quantity,model,value,unit"
    assert "nodules FN,student,1," in csv_text


def test_reader_pairs_and_shape_errors():
    a = _box(SHAPE, 1, slice(0, 2), slice(0, 2))
    b = _box(SHAPE, 1, slice(0, 2), slice(0, 1))
    c = np.zeros(SHAPE, np.uint8)
    d = reader_pair_dice({"1": a, "2": b, "3": c})
    assert d[("1", "2")] == pytest.approx(2 * 2 / 6)
    assert set(d) == {("1", "2"), ("1", "3"), ("2", "3")}
    with pytest.raises(ValueError, match="shape"):
        compare_models({"student": _seg(a, 1, 1, 1)}, consensus=np.zeros((2, 2, 2)))


def test_disagreement_labels_and_edit_summary():
    s = _box(SHAPE, 2, slice(0, 3), slice(0, 3))
    t = _box(SHAPE, 2, slice(1, 4), slice(1, 4))
    lab = disagreement_labels(s, t)
    assert lab.dtype == np.uint8
    assert np.count_nonzero(lab == STUDENT_ONLY) == 9 - 4
    assert np.count_nonzero(lab == TEACHER_ONLY) == 9 - 4
    assert lab[2, 1, 1] == 0 and lab[2, 0, 0] == STUDENT_ONLY and lab[2, 3, 3] == TEACHER_ONLY
    edited = s.copy()
    edited[2, 0, 0] = 0  # erased one voxel
    edited[4, 5, 5:8] = 1  # painted three
    e = edit_summary(s, edited)
    assert e == {"voxels_added": 3, "voxels_removed": 1, "voxels_model": 9, "voxels_edited": 11}


def test_readers_who_both_outlined_nothing_do_not_count():
    a = _box(SHAPE, 1, slice(0, 2), slice(0, 2))
    empty = np.zeros(SHAPE, np.uint8)
    d = reader_pair_dice({"1": a, "2": empty, "3": empty})
    assert set(d) == {("1", "2"), ("1", "3")} and all(v == 0.0 for v in d.values())
