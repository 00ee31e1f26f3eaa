"""3-D CNN false-positive classifiers: patient split, a few steps separate balls from tubes,
distillation, and the end-to-end run writing verified files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from napari_lungkd.models.cnn3d import load_cnn3d  # noqa: E402
from napari_lungkd.progress import run_to_end  # noqa: E402
from src_training import fp_cnn3d  # noqa: E402
from src_training.fp_cnn3d import PatchSet, Schedule, iter_train, split  # noqa: E402
from src_training.fp_cnn3d_scores import auc, held_out_from_files  # noqa: E402
from src_training.fp_data import CaseTable  # noqa: E402
from src_training.losses import response_kd  # noqa: E402


def shapes(n: int, rng: np.random.Generator, size: int = 32):
    """``n`` HU patches of lung (-850 HU, noisy): even rows a ball (nodule), odd rows a tube
    (vessel) through the centre at a random 3-D orientation; labels 1 / 0."""
    g = np.stack(np.meshgrid(*[np.arange(size) - (size - 1) / 2] * 3, indexing="ij"))
    out = np.empty((n, size, size, size), np.int16)
    y = np.zeros(n, int)
    for i in range(n):
        hu = -850 + 40 * rng.standard_normal((size, size, size))
        shift = rng.uniform(-2, 2, 3)[:, None, None, None]
        p = g - shift
        if i % 2 == 0:
            r = rng.uniform(2.5, 5.0)
            inside = (p**2).sum(0) < r**2
            y[i] = 1
        else:
            d = rng.standard_normal(3)
            d /= np.linalg.norm(d)
            along = np.tensordot(d, p, axes=1)
            r = rng.uniform(1.5, 3.0)
            inside = ((p - d[:, None, None, None] * along) ** 2).sum(0) < r**2
        hu[inside] = rng.uniform(-50, 80)
        out[i] = np.rint(hu).astype(np.int16)
    return out, y


def table(name, patient, kind, patches, y, trainable=True):
    n = len(y)
    ref_hit = np.where(y == 1, np.cumsum(y == 1) - 1, -1).astype(np.int32)
    return CaseTable(
        name,
        patient,
        kind,
        trainable,
        np.zeros((n, 1)),
        ref_hit,
        np.zeros(n, bool),
        int((y == 1).sum()),
        {},
        np.zeros((n, 3), np.float32),
        patches,
    )


def test_split_is_by_patient_and_never_trains_on_non_trainable_scans():
    e = np.zeros((0, 32, 32, 32), np.int16), np.zeros(0, int)
    tabs = [table(f"phantom-{s}", f"phantom-{s}", "phantom", *e) for s in (5000, 5011, 5012, 5023)]
    tabs += [
        table("LIDC-IDRI-0001", "LIDC-IDRI-0001", "real", *e),
        table("LIDC-IDRI-0001+ins7000", "LIDC-IDRI-0001", "inserted", *e),
        table("pyradiomics_lung2+ins7000", "pyradiomics_lung2", "inserted", *e),
        table("elastix_baseline", "elastix", "real", *e),
        table("LUNG1-001", "LUNG1-001", "real", *e, trainable=False),
        table("other_nc", "other_nc", "real", *e, trainable=False),
    ]
    train, test = split(tabs)
    names = lambda ts: {t.name for t in ts}  # noqa: E731
    assert names(train) == {
        "phantom-5000",
        "phantom-5011",
        "pyradiomics_lung2+ins7000",
        "elastix_baseline",
    }
    assert names(test) == {
        "phantom-5012",
        "phantom-5023",
        "LIDC-IDRI-0001",
        "LIDC-IDRI-0001+ins7000",
        "LUNG1-001",
    }


def test_distillation_term_is_zero_when_student_equals_teacher():
    z = torch.linspace(-6, 6, 25)
    assert float(response_kd(z, z.clone(), 4.0)) == pytest.approx(0.0, abs=1e-7)
    assert float(response_kd(z, -z, 4.0)) > 0.1


def test_a_few_steps_separate_balls_from_tubes():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    train = PatchSet(*shapes(48, rng))
    xt, yt = shapes(40, rng)
    test = [table("t", "t", "phantom", xt, yt)]
    sched = Schedule(steps=40, batch=16, lr=3e-3)
    model = run_to_end(iter_train("student", train, seed=0, schedule=sched))
    probs = list(run_to_end(fp_cnn3d.iter_score_tables(model, test)))
    assert auc(test, probs) > 0.8


def test_training_is_a_generator_that_can_be_stopped():
    rng = np.random.default_rng(1)
    gen = iter_train("student", PatchSet(*shapes(8, rng)), schedule=Schedule(steps=100, batch=4))
    p = next(gen)
    assert (p.done, p.total) == (1, 100)
    gen.close()  # stops without running the other 99 steps


def test_run_trains_scores_and_writes_verified_files(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setattr(
        fp_cnn3d,
        "SCHEDULES",
        {"teacher": Schedule(steps=2, batch=4), "student": Schedule(steps=3, batch=4)},
    )
    rng = np.random.default_rng(2)
    tabs = [table("phantom-5000", "phantom-5000", "phantom", *shapes(6, rng))]
    tabs.append(table("phantom-5012", "phantom-5012", "phantom", *shapes(6, rng)))
    tabs.append(table("LIDC-IDRI-0001+ins7000", "LIDC-IDRI-0001", "inserted", *shapes(4, rng)))
    report = run_to_end(fp_cnn3d.iter_run(tabs, tmp_path, seeds=(0,), log=lambda s: None))
    assert [r["role"] for r in report["runs"]] == ["teacher", "baseline", "distilled"]
    for r in report["runs"]:
        model, header = load_cnn3d(r["path"])
        assert header["data_split"]["train_cases"] == ["phantom-5000"]
        assert header["training"]["seed"] == 0
        assert set(header["metrics"]["held_out"]) == {"phantom", "real anatomy"}
        assert 0.0 <= header["metrics"]["held_out"]["phantom"]["auc"] <= 1.0
    assert report["runs"][0]["params"] > 10 * report["runs"][1]["params"]
    # the operating points come from the held-out real-anatomy scan, and the file that held a
    # scan out is the one that scores it in the FP-reduction bench
    header = load_cnn3d(report["runs"][2]["path"])[1]
    assert header["operating_points_from"] == ["LIDC-IDRI-0001+ins7000"]
    assert [o["fp_per_scan"] for o in header["operating_points"]][3] == 1.0
    assert header["default_threshold"] == header["operating_points"][3]["threshold"]
    later = table("LIDC-IDRI-0001+ins7009", "LIDC-IDRI-0001", "inserted", *shapes(2, rng))
    held = held_out_from_files([*tabs, later], [report["runs"][2]["path"]], log=lambda s: None)
    # a copy made after training is held out too: its patient never trained
    assert [t.name for t in held.tables] == [
        "phantom-5012",
        "LIDC-IDRI-0001+ins7000",
        "LIDC-IDRI-0001+ins7009",
    ]
    assert np.allclose(held.scores[1], report["runs"][2]["scores"][1])
    # the same network re-stamped with the operating points of other candidate tables
    from src_training.fp_calibrate import calibrate

    other = [tabs[0], tabs[1], table(tabs[2].name, tabs[2].patient, "inserted", *shapes(6, rng))]
    points = calibrate(
        Path(report["runs"][2]["path"]), other, tmp_path / "t_fp.safetensors", "teacher"
    )
    model, cal = load_cnn3d(tmp_path / "t_fp.safetensors")
    assert cal["default_threshold"] == points["default_threshold"]
    assert cal["training"]["unet_operating_points"] == "teacher"
    assert cal["tensors_sha256"] == header["tensors_sha256"]  # the same network
    # more students distilled from that teacher file, no new teacher
    teacher_path = report["runs"][0]["path"]
    more = run_to_end(
        fp_cnn3d.iter_run(
            tabs,
            tmp_path / "more",
            (1,),
            lambda s: None,
            teacher_file=teacher_path,
            roles=("distilled",),
        )
    )
    assert [(r["role"], r["seed"]) for r in more["runs"]] == [("distilled", 1)]
    assert load_cnn3d(more["runs"][0]["path"])[1]["training"]["teacher"] == str(teacher_path)


def test_fold_b_holds_out_the_unet_training_hosts():
    rng = np.random.default_rng(3)
    tabs = [
        table("elastix_baseline", "elastix", "real", *shapes(2, rng)),
        table("LIDC-IDRI-0001", "LIDC-IDRI-0001", "real", *shapes(2, rng)),
        table("LUNG1-001", "LUNG1-001", "real", *shapes(2, rng), trainable=False),
    ]
    train, test = split(tabs, fp_cnn3d.FOLDS["B"])
    assert [t.name for t in train] == ["LIDC-IDRI-0001"]
    assert [t.name for t in test] == ["elastix_baseline"]
