"""One speed-up: the definition by hand, and every face that shows it gives the same number."""

from __future__ import annotations

import pytest
from tiny_models import synthetic_ct, tiny_model

from napari_lungkd.inference import Timings, segment
from napari_lungkd.scoring.speed import speedup


def timings(model_s: float, slices: int, total_s: float = 10.0) -> Timings:
    return Timings(
        load=0.0,
        backend_setup=0.0,
        lung_region=0.1,
        preprocess=0.2,
        model=model_s,
        postprocess=0.3,
        total=total_s,
        slices=slices,
        slices_per_s=slices / model_s if model_s else 0.0,
        ms_per_slice=1000 * model_s / slices if slices else 0.0,
    )


def test_speedup_is_model_seconds_per_slice_like_for_like():
    # teacher 0.8 s per slice over 10 slices, student 0.2 s per slice over 20 slices: 4x, however
    # long either took end to end (loading, post-processing are not the model's speed)
    assert speedup(timings(8.0, 10, total_s=9.0), timings(4.0, 20, total_s=30.0)) == pytest.approx(
        4.0
    )
    assert speedup(timings(1.0, 0), timings(1.0, 5)) is None  # the teacher ran no slice
    assert speedup(timings(1.0, 5), timings(0.0, 5)) is None  # no measurable student time


def test_comparison_and_cli_show_the_same_speedup():
    from napari_lungkd.cli.segment import compare, one_line
    from napari_lungkd.scoring.comparison import compare_models

    ct = synthetic_ct()
    student = segment(ct, tiny_model(), device="cpu")
    teacher = segment(ct, tiny_model(), device="cpu", prepared=student.prepared)
    expected = speedup(teacher.timings, student.timings)
    assert expected is not None and expected > 0

    comp = compare_models({"student": student, "teacher": teacher})
    assert comp.speedup == expected
    rows = {(r["quantity"], r["model"]): r["value"] for r in comp.rows()}
    assert rows[("speed-up", "student vs teacher")] == round(expected, 2)

    cli = compare({"student": student, "teacher": teacher})
    assert cli["speedup_model"] == expected
    report = {
        "load_ct_s": 0.1,
        "models": {
            name: {"timings": seg.timings.to_dict(), "n_nodules": len(seg.nodules)}
            for name, seg in (("student", student), ("teacher", teacher))
        },
        "comparison": cli,
    }
    assert f"speed-up {expected:.2f}x" in one_line(1, 1, "case", report)
