"""Bundling weights that came back from a GPU machine: re-stamped, not re-quantised, verified."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def int8_student(tmp_path_factory):
    import torch

    from napari_lungkd.models.quant import compress
    from napari_lungkd.models.specs import build_model, get_spec
    from napari_lungkd.models.weights import save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "distilled_s1.safetensors"
    state = compress(build_model(get_spec("student")).state_dict(), "int8")
    meta = {
        "training": {"config": {"name": "student_kd", "seed": 1}},
        "data_split": {"patients": {"train": ["LKD-PHANTOM-0000", "elastix"], "test": []}},
        "metrics": {"val_dice_best": 0.35},
        "precision": "int8 per-channel",
    }
    save_weights(path, state, get_spec("student"), meta)
    return path


def _oneshot_json(tmp_path):
    doc = {
        "mix": {"phantom_seeds": list(range(32)), "classic": False, "hosts": ["elastix_baseline"]},
        "models": [{"name": "distilled_s1", "seed": 1, "steps": 928, "train_s": 48.3}],
        "plan": {"data": {"data.hard_fraction": 0.0}},
        "device": "NVIDIA H200",
        "amp": "bf16",
    }
    path = tmp_path / "oneshot.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_gpu_file_is_bundled_with_its_bytes_and_what_it_was_trained_on(int8_student, tmp_path):
    from safetensors import safe_open

    from napari_lungkd.models.weights import load_weights
    from napari_lungkd.models.weights_card import describe_metadata, read_header
    from src_training.bundle import bundle, training_data

    extra = {"student": {"training_data": training_data(_oneshot_json(tmp_path), "distilled_s1")}}
    notes = {"student": "held out: LIDC-IDRI-0001: 14.0 false marks per scan"}
    reg = bundle({"student": str(int8_student)}, {"student": "fp32"}, None, tmp_path, extra, notes)
    out = tmp_path / "student.safetensors"
    assert reg["student"]["precision"] == "int8"  # the file's own precision, not the default
    assert reg["student"]["real_ct"] == notes["student"]
    assert json.loads((tmp_path / "registry.json").read_text()) == reg
    with safe_open(str(int8_student), "pt") as a, safe_open(str(out), "pt") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        assert all(a.get_tensor(k).equal(b.get_tensor(k)) for k in a.keys())  # same bytes
    _, info = load_weights(out)
    assert info.spec.name == "student"
    head = read_header(out)
    assert head["training_data"]["seed"] == 1 and head["training_data"]["steps"] == 928
    assert head["metrics"]["val_dice_best"] == 0.35
    line = describe_metadata("student", head)
    assert (
        "32 varied phantoms, seeds 0-31" in line and "elastix_baseline" in line and "seed 1" in line
    )


def test_a_tampered_gpu_file_is_refused(int8_student, tmp_path):
    from napari_lungkd.errors import WeightsError
    from src_training.export import restamp

    bad = tmp_path / "bad.safetensors"
    data = bytearray(int8_student.read_bytes())
    data[-100] ^= 0xFF  # a flipped byte in the last tensor
    bad.write_bytes(bytes(data))
    with pytest.raises(WeightsError):
        restamp(bad, tmp_path / "student.safetensors")
    assert not (tmp_path / "student.safetensors").exists()
