"""One report.json per case folder that keeps every model written there (issue 17, item 1): a
teacher run after a student run into the same --out must not lose the student's provenance."""

from __future__ import annotations

import json
import threading

from tiny_models import SPACING_MM, synthetic_ct
from tiny_segmenter import use_tiny_models

from napari_lungkd.cli.case_report import merge_reports, write_report
from napari_lungkd.cli.main import main


def _report(models, ct_uid="1.2.3", **extra):
    return {
        "ct": {"source": f"ct-{ct_uid}", "series_uid": ct_uid, "shape_zyx": [2, 3, 4]},
        "models": {m: {"provenance": {"model": m}} for m in models},
        "warnings": [f"{m}: note of {m}" for m in models],
        **extra,
    }


def test_merge_keeps_other_models_and_replaces_the_one_run_again():
    student = _report(["student"], scores={"student": {"dice": 0.5}}, lidc={"xml": "a.xml"})
    teacher = _report(["teacher"])
    merged = merge_reports(student, teacher)
    assert list(merged["models"]) == ["student", "teacher"]
    assert merged["scores"] == {"student": {"dice": 0.5}} and merged["lidc"] == {"xml": "a.xml"}
    assert merged["warnings"] == ["teacher: note of teacher", "student: note of student"]
    again = _report(["student"])
    again["models"]["student"]["provenance"]["threshold"] = 0.3
    merged = merge_reports(merged, again)
    assert merged["models"]["student"]["provenance"]["threshold"] == 0.3
    assert set(merged["models"]) == {"student", "teacher"}
    assert merged["warnings"] == ["student: note of student", "teacher: note of teacher"]


def test_a_comparison_is_dropped_once_either_model_is_run_again():
    both = _report(["student", "teacher"], comparison={"dice_student_teacher": 0.9})
    assert merge_reports(None, both)["comparison"] == {"dice_student_teacher": 0.9}
    merged = merge_reports(both, _report(["teacher"]))
    assert "comparison" not in merged and set(merged["models"]) == {"student", "teacher"}


def test_models_from_another_ct_are_kept_and_said_so():
    merged = merge_reports(_report(["student"], ct_uid="9.9"), _report(["teacher"]))
    assert any(
        w.startswith("student: written by an earlier run on another CT") for w in merged["warnings"]
    )


def test_an_unreadable_report_is_replaced(tmp_path):
    (tmp_path / "report.json").write_text("{not json")
    write_report(tmp_path, _report(["student"]))
    assert list(json.loads((tmp_path / "report.json").read_text())["models"]) == ["student"]


def test_concurrent_writers_into_one_folder_lose_no_model(tmp_path):
    names = [f"model{i:02d}" for i in range(12)]
    for attempt in range(4):  # all start at once: without the lock, models get lost
        folder = tmp_path / str(attempt)
        folder.mkdir()
        start, errors = threading.Barrier(len(names)), []

        def run(name, folder=folder, start=start, errors=errors):
            try:
                start.wait()
                write_report(folder, _report([name]))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        report = json.loads((folder / "report.json").read_text())
        assert sorted(report["models"]) == names
        assert sorted(p.name for p in folder.iterdir()) == ["report.json"]


def _write_ct(path):
    import SimpleITK as sitk

    ct = synthetic_ct()
    img = sitk.GetImageFromArray(ct.hu)
    img.SetSpacing(tuple(float(s) for s in SPACING_MM[::-1]))
    sitk.WriteImage(img, str(path))


def test_student_then_teacher_into_one_out_keeps_both_in_report_json(tmp_path, monkeypatch):
    built = use_tiny_models(monkeypatch)
    ct_path = tmp_path / "chest.nii.gz"
    _write_ct(ct_path)
    out = tmp_path / "out"
    argv = ["segment", str(ct_path), "--device", "cpu", "--classifier", "off", "--out", str(out)]
    assert main([*argv, "--model", "student"]) == 0
    assert main([*argv, "--model", "teacher"]) == 0
    assert built == ["student", "teacher"]
    case = out / "chest"
    report = json.loads((case / "report.json").read_text())
    assert list(report["models"]) == ["student", "teacher"]
    for model in ("student", "teacher"):
        entry = report["models"][model]
        assert entry["provenance"]["model"] == model
        assert entry["mask"] == str(case / f"{model}_mask.nii.gz")
        assert (case / f"{model}_mask.nii.gz").is_file() and entry["n_nodules"] == 1
    # both at once, then the student again: the stale comparison goes, the teacher stays
    assert main([*argv, "--model", "both", "--overwrite"]) == 0
    assert "comparison" in json.loads((case / "report.json").read_text())
    assert main([*argv, "--model", "student", "--overwrite", "--threshold", "0.7"]) == 0
    report = json.loads((case / "report.json").read_text())
    assert "comparison" not in report and set(report["models"]) == {"student", "teacher"}
    assert report["models"]["student"]["provenance"]["threshold"] == 0.7
    assert report["models"]["teacher"]["provenance"]["threshold"] != 0.7
    assert sorted(p.name for p in case.iterdir()) == sorted(
        [
            f"{m}_{f}"
            for m in ("student", "teacher")
            for f in ("mask.nii.gz", "mask.json", "nodules.csv")
        ]
        + ["report.json"]
    )
