"""src_training end to end on synthetic phantom cases: prepare -> teacher -> baseline -> KD ->
evaluate -> export -> the plugin loads and runs the file; resume; two-process DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_lungkd.errors import TrainingError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "src_training" / "configs"


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the 2 cores are shared, and two threads on a busy machine are slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def phantom_cache(tmp_path_factory):
    """Five small phantom cases (96 x 96, 32 slices, two nodules each) written as DICOM + LIDC XML
    by the phantom generator and prepared into a training cache with the readers' consensus."""
    from napari_lungkd.phantom import make_phantom, write_case
    from napari_lungkd.progress import run_to_end
    from src_training.prepare import iter_prepare

    root = tmp_path_factory.mktemp("phantoms")
    for seed in range(5):
        write_case(make_phantom(100 + seed, size=96, n_slices=32, n_nodules=2), root / "cases")
    split = run_to_end(iter_prepare(root / "cases", root / "cache", level=0.5, seed=0))
    return root / "cache", split


def _cfg(name, cache, out, **over):
    from src_training.config import load_config

    overrides = [f"cache={cache}", f"out={out}"] + [f"{k}={v}" for k, v in over.items()]
    return load_config(CONFIGS / f"{name}.yaml", overrides)


def test_prepare_writes_cache_and_patient_split(phantom_cache):
    cache, split = phantom_cache
    parts = {k: set(v) for k, v in split["patients"].items()}
    assert sum(len(v) for v in parts.values()) == 5 and all(parts.values())
    assert not (parts["train"] & parts["test"]) and not (parts["train"] & parts["val"])
    case_id = split["cases"]["train"][0]
    meta = json.loads((cache / case_id / "case.json").read_text())
    hu = np.load(cache / case_id / "hu.npy")
    mask = np.load(cache / case_id / "mask.npy")
    assert hu.dtype == np.int16 and hu.shape == (32, 96, 96) and mask.shape == hu.shape
    assert -1100 < np.median(hu) < 200  # a chest CT in HU, not raw stored values
    assert meta["positive_slices"] == np.flatnonzero(mask.reshape(32, -1).any(1)).tolist()
    assert meta["reference"].startswith("consensus")
    assert any(
        json.loads((cache / c / "case.json").read_text())["n_nodules"] > 0
        for c in split["cases"]["train"]
    )


@pytest.mark.slow
def test_teacher_baseline_kd_evaluate_export_end_to_end(phantom_cache, tmp_path):
    pytest.importorskip("tensorboard")  # an optional extra: the test reads its event logs
    from napari_lungkd.inference.segmenter import segment
    from napari_lungkd.inference.torch_runner import load_model
    from napari_lungkd.models.weights import load_weights
    from napari_lungkd.progress import run_to_end
    from src_training.evaluate import iter_evaluate
    from src_training.export import export
    from src_training.train import train

    cache, split = phantom_cache
    runs = tmp_path / "runs"
    tb = {"tensorboard": True}  # TensorBoard logs only when asked for
    t = train(_cfg("tiny_teacher", cache, runs / "teacher", **tb), quiet=True)
    b = train(_cfg("tiny_student_baseline", cache, runs / "baseline", **tb), quiet=True)
    k = train(
        _cfg("tiny_student_kd", cache, runs / "kd", teacher=runs / "teacher" / "best.pt", **tb),
        quiet=True,
    )
    assert t["n_parameters"] > b["n_parameters"] == k["n_parameters"]
    for run in ("teacher", "baseline", "kd"):
        log = (runs / run / "log.csv").read_text().splitlines()
        assert log[0].startswith("epoch,step,lr,train_loss,val_dice") and len(log) == 3
        assert (runs / run / "best.pt").is_file() and any((runs / run / "tb").iterdir())
    # the KD run really distilled: its TensorBoard log has the distillation terms
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(runs / "kd" / "tb")).Reload().Tags()["scalars"]
    assert {
        "train/response",
        "train/attention",
        "train/region_affinity",
        "train/channel_wise",
    } <= set(tags)

    models = {
        "teacher": [str(runs / "teacher" / "best.pt")],
        "baseline": [str(runs / "baseline" / "best.pt")],
        "distilled": [str(runs / "kd" / "best.pt")],
    }
    doc = run_to_end(
        iter_evaluate(cache, cache / "split.json", models, part="test", device="cpu", threads=1)
    )
    assert "| distilled | 1 |" in doc["markdown"]
    row = doc["groups"]["distilled"]["runs"][0]
    assert row["n_parameters_m"] == pytest.approx(14.32, abs=0.01)
    assert 0.0 <= row["global_dice"] <= 1.0 and row["s_per_ct"] > 0 and row["ms_per_slice"] > 0
    assert row["reference_nodules"] >= 1 and row["scans"] == len(split["cases"]["test"])

    # export -> the plugin loads the file by model name and segments a CT with it
    out = tmp_path / "student.safetensors"
    done = export(
        runs / "kd" / "best.pt",
        out,
        fp16=True,
        metrics={"test": doc["groups"]["distilled"]["summary"]},
    )
    state, info = load_weights(out, expected_spec=None)
    assert info.sha256 == done["sha256"] and info.spec.encoder == "resnet18"
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert set(info.metadata["data_split"]["patients"]["train"]) == set(split["patients"]["train"])
    assert info.metadata["training"]["config"]["teacher"].endswith("best.pt")
    loaded = load_model("student", out)
    from src_training.data import open_cases
    from src_training.evaluate import case_ct

    case = open_cases(cache, split["cases"]["test"])[0]
    seg = segment(case_ct(case), model=loaded, device="cpu", num_threads=1)
    assert seg.mask.shape == case.hu.shape and seg.provenance.weights_sha256 == done["sha256"]
    # the command lines: evaluate writes Markdown + JSON, export stores that row in the metadata
    from src_training.evaluate import main as evaluate_main
    from src_training.export import main as export_main

    table = tmp_path / "table"
    argv = [
        "--cache",
        str(cache),
        "--model",
        f"teacher={runs / 'teacher' / 'best.pt'}",
        "--out",
        str(table),
    ]
    assert evaluate_main(argv + ["--threads", "1"]) == 0
    assert "| teacher | 1 |" in table.with_suffix(".md").read_text()
    teacher_file = tmp_path / "teacher.safetensors"
    argv = [
        str(runs / "teacher" / "best.pt"),
        str(teacher_file),
        "--metrics",
        str(table.with_suffix(".json")),
    ]
    assert export_main(argv) == 0
    teacher = load_model("assistant34", teacher_file)
    assert teacher.spec.encoder == "resnet34"
    saved = teacher.metadata["metrics"]["evaluation"]
    assert saved["n_parameters_m"] == pytest.approx(teacher.n_parameters / 1e6)


def test_evaluate_refuses_cases_of_the_models_training_patients(phantom_cache, tmp_path):
    from napari_lungkd.progress import run_to_end
    from src_training.evaluate import iter_evaluate
    from src_training.train import train

    cache, split = phantom_cache
    cfg = _cfg(
        "tiny_student_baseline",
        cache,
        tmp_path / "b",
        **{"optim.epochs": 1, "data.samples_per_epoch": 4},
    )
    train(cfg, quiet=True)
    with pytest.raises(TrainingError, match="training patient"):
        run_to_end(
            iter_evaluate(
                cache, cache / "split.json", {"b": [str(tmp_path / "b" / "best.pt")]}, part="train"
            )
        )


def _hash(folder, rank=0):
    return (Path(folder) / f"state_sha256_rank{rank}.txt").read_text().strip()


@pytest.mark.slow
def test_resume_after_interruption_equals_uninterrupted_run(phantom_cache, tmp_path):
    from src_training.train import train

    cache, _ = phantom_cache
    over = {"optim.epochs": 2, "data.samples_per_epoch": 16}
    full = train(_cfg("tiny_student_baseline", cache, tmp_path / "full", **over), quiet=True)
    # interrupted at an epoch end, then resumed
    cfg = _cfg("tiny_student_baseline", cache, tmp_path / "cut", **over)
    first = train(cfg, stop_after_epochs=1, quiet=True)
    assert first["epochs_done"] == 1 and first["state_sha256"] != full["state_sha256"]
    resumed = train(cfg, resume=True, quiet=True)
    assert resumed["epochs_done"] == 2 and resumed["state_sha256"] == full["state_sha256"]
    # interrupted in the middle of an epoch (position in the sampler saved), then resumed
    cfg = _cfg("tiny_student_baseline", cache, tmp_path / "mid", **over)
    train(cfg, stop_after_steps=5, quiet=True)
    resumed = train(cfg, resume=True, quiet=True)
    assert resumed["state_sha256"] == full["state_sha256"]
    a = (tmp_path / "full" / "log.csv").read_text().splitlines()
    b = (tmp_path / "mid" / "log.csv").read_text().splitlines()
    strip = [",".join(r.split(",")[:-1]) for r in a], [",".join(r.split(",")[:-1]) for r in b]
    assert strip[0] == strip[1]  # same losses and Dice per epoch (only the seconds differ)
    with pytest.raises(TrainingError, match="Nothing to resume"):
        train(
            _cfg("tiny_student_baseline", cache, tmp_path / "none", **over), resume=True, quiet=True
        )


@pytest.mark.slow
def test_torchrun_two_cpu_processes_end_with_identical_weights(phantom_cache, tmp_path):
    cache, _ = phantom_cache
    out = tmp_path / "ddp"
    teacher_out = tmp_path / "t"
    from src_training.train import train

    train(
        _cfg(
            "tiny_teacher", cache, teacher_out, **{"optim.epochs": 1, "data.samples_per_epoch": 8}
        ),
        quiet=True,
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", LUNGKD_TRAIN_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "src_training.train",
        str(CONFIGS / "tiny_student_kd.yaml"),
        "--quiet",
        "--set",
        f"cache={cache}",
        "--set",
        f"out={out}",
        "--set",
        f"teacher={teacher_out / 'best.pt'}",
        "--set",
        "optim.epochs=1",
        "--set",
        "data.samples_per_epoch=16",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    h0, h1 = _hash(out, 0), _hash(out, 1)
    assert h0 == h1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["state_sha256"] == h0


@pytest.mark.slow
def test_ablation_prints_one_table_over_levels_and_augmentation(phantom_cache, tmp_path):
    from src_training.ablation import run_ablation, variant_config
    from src_training.train import train

    cache, _ = phantom_cache
    short = {"optim.epochs": 1, "data.samples_per_epoch": 8}
    train(_cfg("tiny_teacher", cache, tmp_path / "t", **short), quiet=True)
    over = [f"cache={cache}", f"teacher={tmp_path / 't' / 'best.pt'}"] + [
        f"{k}={v}" for k, v in short.items()
    ]
    doc = run_ablation(
        CONFIGS / "tiny_student_kd.yaml",
        tmp_path / "abl",
        levels=("none", "output"),
        overrides=over,
    )
    table = doc["markdown"]
    for label in ("none +aug", "none -aug", "output +aug", "output -aug"):
        assert f"| {label} | 1 |" in table
    assert (tmp_path / "abl" / "ablation.md").read_text() == table
    # what each level switches on
    from src_training.config import load_config

    base = load_config(CONFIGS / "tiny_student_kd.yaml", over)
    feats = variant_config(base, "features", False, 0, tmp_path, {"attention": 100.0})
    assert (
        feats.distill.response == 0 and feats.distill.attention == 100.0 and feats.augment is None
    )
    both = variant_config(base, "both", True, 1, tmp_path, {"attention": 100.0})
    assert both.distill.response > 0 and both.augment and both.seed == 1
    assert variant_config(base, "none", True, 0, tmp_path, {}).teacher is None


def test_prepare_with_truth_uses_the_phantoms_own_labels(phantom_cache, tmp_path):
    import SimpleITK as sitk

    from napari_lungkd.progress import run_to_end
    from src_training.prepare import find_cases, iter_prepare

    cache, _ = phantom_cache
    root = cache.parent / "cases"
    split = run_to_end(iter_prepare(root, tmp_path / "truth", use_truth=True, limit=2))
    assert split["reference"] == "truth"
    truths = {item["truth"].parent.name: item["truth"] for item in find_cases(root)[:2]}
    for case_id in split["cases"]["train"] + split["cases"]["val"] + split["cases"]["test"]:
        meta = json.loads((tmp_path / "truth" / case_id / "case.json").read_text())
        labels = np.load(tmp_path / "truth" / case_id / "labels.npy")
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(truths[meta["patient_id"]])))
        assert np.array_equal(labels, truth)  # same grid, same labels (DICOM slice order = NIfTI z)
        assert np.array_equal(
            np.load(tmp_path / "truth" / case_id / "mask.npy"), (truth > 0).astype(np.uint8)
        )
