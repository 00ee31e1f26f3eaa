"""src_training.checkpoints: the one checkpoint reader (train --resume, teacher, evaluate, export)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from napari_lungkd.errors import TrainingError  # noqa: E402
from napari_lungkd.models.specs import build_model, get_spec  # noqa: E402
from src_training.checkpoints import (  # noqa: E402
    build_trained,
    read_checkpoint,
    read_weights,
    write_checkpoint,
)

SRC = Path(__file__).resolve().parents[2] / "src_training"


class NotData:
    """Unpickling this would run code: a weights-only load refuses it."""


def test_read_checkpoint_refuses_missing_foreign_and_unsafe_files(tmp_path):
    with pytest.raises(TrainingError, match=r"nope\.pt does not exist"):
        read_checkpoint(tmp_path / "nope.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": {}}, foreign)
    with pytest.raises(TrainingError, match="is not a src_training checkpoint"):
        read_checkpoint(foreign)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": {}, "spec": get_spec("student").to_dict(), "x": NotData()}, unsafe)
    with pytest.raises(TrainingError, match="cannot be read weights-only") as err:
        read_checkpoint(unsafe)
    assert "\n" not in str(err.value)
    bad_spec = tmp_path / "bad_spec.pt"
    torch.save({"model": {}, "spec": {"encoder": 3}}, bad_spec)
    with pytest.raises(TrainingError, match="unusable model spec"):
        read_checkpoint(bad_spec)


def test_a_checkpoint_and_its_export_read_as_the_same_trained_weights(tmp_path):
    from src_training.export import export

    spec = get_spec("student")
    torch.manual_seed(0)
    model = build_model(spec).eval()
    split = {"patients": {"train": ["P1"], "val": [], "test": []}}
    ckpt = tmp_path / "best.pt"
    write_checkpoint(
        ckpt, {"model": model.state_dict(), "spec": spec.to_dict(), "data_split": split}
    )
    exported = tmp_path / "student.safetensors"
    export(ckpt, exported)
    a, b = read_weights(ckpt), read_weights(exported)
    assert a.spec.architecture() == b.spec.architecture() and a.data_split == b.data_split == split
    assert a.metadata == {} and b.metadata["data_split"] == split
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(build_trained(a)(x), model(x)) and torch.allclose(
            build_trained(b)(x), model(x)
        )
    with pytest.raises(TrainingError, match="does not exist"):
        read_weights(tmp_path / "missing.safetensors")


def test_only_checkpoints_py_unpickles_a_checkpoint():
    """One loader: every other training module goes through read_checkpoint / read_weights."""
    readers = sorted(p.name for p in SRC.glob("*.py") if re.search(r"torch\.load\(", p.read_text()))
    assert readers == ["checkpoints.py"]
