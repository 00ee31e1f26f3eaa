"""src_training.train: one stop rule, hooks removed however training ends, TensorBoard only when
asked for, validation Dice pooled like napari_lungkd.scoring.metrics.dice (on a tiny cache)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training_cache import write_cache  # noqa: E402

from napari_lungkd.errors import TrainingError  # noqa: E402
from napari_lungkd.models.specs import build_model, get_spec  # noqa: E402
from napari_lungkd.scoring.metrics import dice  # noqa: E402
from src_training import data as D  # noqa: E402
from src_training import train as T  # noqa: E402
from src_training.checkpoints import read_checkpoint, write_checkpoint  # noqa: E402
from src_training.config import load_config  # noqa: E402
from src_training.run import RunState, build_run  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "src_training" / "configs"


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def kd_setup(tmp_path_factory):
    """A 4-case cache and a random-weights 'teacher' checkpoint (the student's architecture)."""
    root = tmp_path_factory.mktemp("train")
    cache = write_cache(root / "cache")
    spec = get_spec("student")
    torch.manual_seed(0)
    teacher = root / "teacher.pt"
    write_checkpoint(teacher, {"model": build_model(spec).state_dict(), "spec": spec.to_dict()})
    return cache, teacher


def _cfg(kd_setup, out, *over):
    cache, teacher = kd_setup
    base = [f"cache={cache}", f"out={out}", f"teacher={teacher}", "data.crop_size=32"]
    base += ["data.batch_size=2", "data.samples_per_epoch=8", "data.val_batch_size=4"]
    base += ["data.val_max_negative=1", "optim.epochs=2", "optim.warmup_steps=1"]
    return load_config(CONFIGS / "tiny_student_kd.yaml", base + list(over))


def test_stop_is_the_runs_last_epoch_or_this_calls_epochs_or_steps():
    run = SimpleNamespace(
        state=RunState(epoch=1), epochs_run=0, steps_run=0
    )  # what reached() reads
    assert not T.Stop(run_epochs=2).reached(run)
    run.state.epoch = 2
    assert T.Stop(run_epochs=2).reached(run)
    run.state.epoch, run.epochs_run, run.steps_run = 0, 1, 5
    assert T.Stop(run_epochs=2, epochs=1).reached(run)
    assert T.Stop(run_epochs=2, steps=5).reached(run)
    assert not T.Stop(run_epochs=2, epochs=2, steps=6).reached(run)


def test_fit_removes_the_teachers_and_students_forward_hooks(kd_setup, tmp_path):
    run = build_run(_cfg(kd_setup, tmp_path / "run"))
    assert run.teacher is not None and len(run.teacher.encoder._forward_hooks) == 1
    assert len(run.model.encoder._forward_hooks) == 1
    summary = T.fit(run, T.Stop(run.cfg.optim.epochs, epochs=1), quiet=True)
    assert summary["epochs_done"] == 1
    assert not run.teacher.encoder._forward_hooks and not run.model.encoder._forward_hooks


def test_fit_removes_the_hooks_when_a_step_fails(kd_setup, tmp_path, monkeypatch):
    run = build_run(_cfg(kd_setup, tmp_path / "run"))

    def broken_step(run, x, y, w=None):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(T, "train_step", broken_step)
    with pytest.raises(RuntimeError, match="out of memory"):
        T.fit(run, T.Stop(run.cfg.optim.epochs), quiet=True)
    assert not run.teacher.encoder._forward_hooks and not run.model.encoder._forward_hooks


def test_a_stop_inside_an_epoch_saves_the_position_and_skips_validation(kd_setup, tmp_path):
    out = tmp_path / "run"
    summary = T.train(_cfg(kd_setup, out), stop_after_steps=3, quiet=True)  # 4 steps per epoch
    state = read_checkpoint(out / "last.pt")["state"]
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (0, 3, 3)
    assert summary["epochs_done"] == 0 and not (out / "log.csv").exists()
    resumed = T.train(_cfg(kd_setup, out), resume=True, quiet=True)
    assert resumed["epochs_done"] == 2
    rows = (out / "log.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rows[1:]] == [["1", "4"], ["2", "8"]]  # epoch, global step


def test_a_run_without_tensorboard_never_imports_it(kd_setup, tmp_path, monkeypatch):
    # an import of either module now fails: a run that tried would stop with an error
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    cfg = _cfg(kd_setup, tmp_path / "plain", "optim.epochs=1")
    assert cfg.tensorboard is False
    T.train(cfg, quiet=True)
    assert (tmp_path / "plain" / "best.pt").is_file() and not (tmp_path / "plain" / "tb").exists()
    asked = _cfg(kd_setup, tmp_path / "tb", "optim.epochs=1", "tensorboard=true")
    with pytest.raises(TrainingError, match="tensorboard is not installed"):
        T.train(asked, quiet=True)


def test_the_cli_without_tensorboard_leaves_it_unimported(kd_setup, tmp_path):
    import subprocess

    cache, teacher = kd_setup
    code = (
        "import sys; from src_training.train import main; "
        f"main([{str(CONFIGS / 'tiny_student_baseline.yaml')!r}, '--quiet', "
        f"'--set', 'cache={cache}', '--set', 'out={tmp_path / 'cli'}', "
        "'--set', 'data.crop_size=32', '--set', 'data.batch_size=2', "
        "'--set', 'data.samples_per_epoch=2', '--set', 'optim.epochs=1']); "
        "print(sorted(m for m in sys.modules if 'tensorboard' in m))"
    )
    repo = CONFIGS.parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["tensorboard"] is False


class BrightNet(torch.nn.Module):
    """A 'model' whose logit is positive where the centre channel is brighter than its mean."""

    def forward(self, x):
        c = x[:, x.shape[1] // 2 : x.shape[1] // 2 + 1]
        return (c - c.mean()) * 50.0


def test_validation_dice_is_metrics_dice_over_the_same_slices(kd_setup):
    cache, _ = kd_setup
    cases = D.open_cases(cache, ["P0_s", "P1_s", "P2_s"])
    spec = get_spec("student")
    got = T.validate(BrightNet(), D.iter_val_batches(cases, spec, 4, 2), 0.5, torch.device("cpu"))
    preds, refs = [], []
    for x, y in D.iter_val_batches(cases, spec, 4, 2):
        preds.append((torch.sigmoid(BrightNet()(x)) >= 0.5).numpy())
        refs.append(y.numpy())
    want = dice(np.concatenate(preds), np.concatenate(refs))
    assert 0.0 < want < 1.0  # a non-trivial overlap
    assert got == pytest.approx(want, abs=1e-12)


def test_init_starts_from_given_weights_and_refuses_another_architecture(kd_setup, tmp_path):
    """``init: PATH`` fine-tunes: the model starts from those weights (not a fresh init), and
    weights of another encoder are one sentence before any work."""
    cache, teacher = kd_setup
    run = build_run(_cfg(kd_setup, tmp_path / "a", "teacher=null", f"init={teacher}"))
    start = read_checkpoint(teacher)["model"]
    for k, v in run.model.state_dict().items():
        assert torch.equal(v, start[k].float()), k
    fresh = build_run(_cfg(kd_setup, tmp_path / "b", "teacher=null", "seed=5"))
    assert any(not torch.equal(v, start[k]) for k, v in fresh.model.state_dict().items())
    other = tmp_path / "other.pt"
    spec = get_spec("student").with_(encoder="resnet34")
    write_checkpoint(other, {"model": build_model(spec).state_dict(), "spec": spec.to_dict()})
    with pytest.raises(TrainingError, match="resnet34"):
        build_run(_cfg(kd_setup, tmp_path / "c", "teacher=null", f"init={other}"))
