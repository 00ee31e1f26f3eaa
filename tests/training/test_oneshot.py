"""src_training.oneshot: the GPU one-shot path on a tiny CPU configuration, and weights in parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from napari_lungkd.errors import TrainingError, WeightsError
from napari_lungkd.models import weights_parts as P


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the 2 cores are shared, and two threads on a busy machine are slower."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _file(path: Path, n: int) -> Path:
    path.write_bytes(bytes((i * 7 + i // 251) % 256 for i in range(n)))
    return path


@pytest.mark.parametrize("n", [0, 999, 1000, 2500])
def test_split_writes_parts_under_the_limit_and_join_gives_the_same_bytes(tmp_path, n):
    src = _file(tmp_path / "w.safetensors", n)
    entry = P.split_file(src, tmp_path / "parts", part_bytes=1000)
    sizes = [(tmp_path / "parts" / p["name"]).stat().st_size for p in entry["parts"]]
    assert all(s <= 1000 for s in sizes) and sum(sizes) == n == entry["bytes"]
    assert len(sizes) == max(1, -(-n // 1000))
    out = P.join_parts(entry, tmp_path / "parts", tmp_path / "joined")
    assert out == tmp_path / "joined"
    assert out.read_bytes() == src.read_bytes()


def test_a_corrupted_short_or_missing_part_is_refused_in_one_sentence(tmp_path):
    src = _file(tmp_path / "teacher.safetensors", 2500)
    entry = P.split_file(src, tmp_path / "parts", part_bytes=1000)
    part1 = tmp_path / "parts" / "teacher.safetensors.part1"
    good = part1.read_bytes()
    part1.write_bytes(good[:500] + bytes([good[500] ^ 1]) + good[501:])  # one bit flipped
    dest = tmp_path / "out" / "teacher.safetensors"
    dest.parent.mkdir()
    with pytest.raises(WeightsError, match="part1 of teacher.safetensors is corrupted") as err:
        P.join_parts(entry, tmp_path / "parts", dest)
    assert "\n" not in str(err.value) and str(err.value).endswith(".")
    assert not list(dest.parent.iterdir())  # no joined file, no temporary left
    part1.write_bytes(good[:-1])
    with pytest.raises(WeightsError, match="has 999 bytes, not 1000"):
        P.join_parts(entry, tmp_path / "parts", dest)
    part1.unlink()
    with pytest.raises(WeightsError, match="part1 of teacher.safetensors is missing"):
        P.join_parts(entry, tmp_path / "parts", dest)
    part1.write_bytes(good)
    bad = {**entry, "sha256": "0" * 64}  # parts fine, whole file not what the manifest says
    with pytest.raises(WeightsError, match="SHA-256 differs"):
        P.join_parts(bad, tmp_path / "parts", dest)
    assert not dest.exists()


def test_batches_respect_the_transfer_limits():
    sizes = {"oneshot.json": 10, "logs.tar.gz": 10, **{f"p{i}": 16 for i in range(9)}}
    batches = P.plan_batches(sizes, max_files=8, max_bytes=64)
    assert [n for b in batches for n in b] == list(sizes)  # every file once, in order
    assert all(len(b) <= 8 and sum(sizes[n] for n in b) <= 64 for b in batches)
    assert P.plan_batches({f"f{i}": 1 for i in range(9)}, max_files=8) == [
        [f"f{i}" for i in range(8)],
        ["f8"],
    ]
    with pytest.raises(ValueError, match="larger than a batch"):
        P.plan_batches({"huge": 65}, max_bytes=64)


@pytest.mark.slow
def test_tiny_oneshot_trains_every_model_and_its_parts_join_into_loadable_weights(tmp_path):
    """The whole GPU path on the CPU: mix (process pool), teacher, 3 baseline, 3 distilled, export,
    parts, batches; the fetched batches join into verified files that the plugin loads."""
    from napari_lungkd.models.weights import load_weights
    from napari_lungkd.progress import run_to_end
    from src_training import oneshot, oneshot_out

    plan = oneshot.tiny_plan(tmp_path / "out", tmp_path / "work")
    stages = []
    doc = run_to_end(oneshot.iter_oneshot(plan), lambda p: stages.append(p.stage))
    assert stages[0] == "mix" and {"train", "export"} <= set(stages)
    out = tmp_path / "out"
    names = [j.name for j in oneshot.jobs(True)]
    assert sorted(e["model"] for e in doc["files"]) == sorted(names)
    assert json.loads((out / "oneshot.json").read_text())["files"] == doc["files"]
    for e in doc["files"]:
        for p in e["parts"]:
            assert (out / p["name"]).stat().st_size == p["bytes"] <= P.PART_BYTES
    assert (out / "logs.tar.gz").is_file()
    assert {m["name"] for m in doc["models"]} == set(names)
    assert all(m["steps"] >= 1 and m["probe_step_s"] > 0 for m in doc["models"])
    listed = [n for b in doc["batches"] for n in b]
    assert sorted(listed) == sorted(p.name for p in out.iterdir())  # every file in one batch
    fetched = tmp_path / "fetched"
    for k in range(len(doc["batches"])):
        oneshot_out.copy_batch(out, k, fetched)
    joined = oneshot_out.join_folder(fetched, tmp_path / "weights")
    encoders = {}
    for path in joined:
        state, info = load_weights(path)
        encoders[path.stem] = info.spec.encoder
        assert info.metadata["training"]["config"]["seed"] in (0, 1, 2)
    assert encoders["teacher"] == "resnet34" and encoders["distilled_s2"] == "resnet18"
    kd = json.loads((tmp_path / "work" / "runs" / "distilled_s1" / "config.json").read_text())
    assert kd["teacher"].endswith("teacher/best.pt") and kd["distill"]["attention"] == 0.0
    with pytest.raises(TrainingError, match="not empty"):
        run_to_end(oneshot.iter_oneshot(plan))


def test_the_channels_last_step_of_cuda_trains_and_exports_on_the_cpu(tmp_path):
    """run.py switches CUDA runs to channels-last; the same step and the export of its
    checkpoint work with that layout (exercised here on the CPU, which supports it too)."""
    torch = pytest.importorskip("torch")
    from training_cache import write_cache

    from napari_lungkd.models.weights import load_weights
    from src_training.config import load_config
    from src_training.export import export
    from src_training.run import build_run, save_checkpoint
    from src_training.train import train_step

    write_cache(tmp_path / "cache", n_cases=2, size=64)
    cfg = load_config(
        Path(__file__).parents[2] / "src_training" / "configs" / "tiny_student_baseline.yaml",
        [f"cache={tmp_path / 'cache'}", f"out={tmp_path / 'run'}"],
    )
    run = build_run(cfg)
    assert run.channels_last is False  # a CPU run keeps the default layout
    run.model.to(memory_format=torch.channels_last)
    run.channels_last = True
    conv = next(m for m in run.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 1, 64, 64)
    y = (torch.rand(2, 1, 64, 64) > 0.9).float()
    losses = [train_step(run, x, y, torch.ones_like(y)) for _ in range(2)]
    run.student_features.remove()
    assert all(torch.isfinite(torch.tensor(losses)))
    save_checkpoint(run, "best.pt", full=False)
    done = export(tmp_path / "run" / "best.pt", tmp_path / "w.safetensors", precision="fp16")
    state, info = load_weights(done["path"])
    assert info.spec.encoder == "resnet18" and all(t.is_contiguous() for t in state.values())


def test_only_and_seeds_choose_the_runs_of_an_ablation_call():
    from napari_lungkd.errors import TrainingError
    from src_training import oneshot

    assert [j.name for j in oneshot.jobs(False, ("baseline",), (0,))] == ["baseline_s0"]
    assert [j.name for j in oneshot.jobs(False, ("teacher", "distilled"), (1, 2))] == [
        "teacher",
        "distilled_s1",
        "distilled_s2",
    ]
    with pytest.raises(TrainingError, match="needs the teacher"):
        oneshot.jobs(False, ("distilled",))
    with pytest.raises(TrainingError, match="unknown kind"):
        oneshot.main(["--out", "x", "--only", "assistant"])
