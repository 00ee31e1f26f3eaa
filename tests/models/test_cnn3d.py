"""The 3-D candidate classifiers: shapes, windowing, augmentation, and a file that refuses tampering."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_lungkd.errors import WeightsError  # noqa: E402
from napari_lungkd.models.cnn3d import (  # noqa: E402
    augment,
    build,
    load_cnn3d,
    n_parameters,
    normalise_hu,
    predict_logits,
    save_cnn3d,
)


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    return build("student").eval()


def test_shapes_and_sizes(student):
    teacher = build("teacher").eval()
    assert 1_000_000 < n_parameters(teacher) < 3_000_000
    assert 30_000 < n_parameters(student) < 150_000
    x = np.full((3, 32, 32, 32), -800, np.int16)
    with torch.no_grad():
        assert teacher(torch.from_numpy(x)).shape == (3,)
        assert student(torch.from_numpy(x).unsqueeze(1)).shape == (3,)
    assert predict_logits(student, x, batch=2).shape == (3,)
    assert predict_logits(student, x[:0]).shape == (0,)
    with pytest.raises(ValueError, match="unknown"):
        build("giant")


def test_window_maps_lung_range_to_unit_interval():
    v = normalise_hu(torch.tensor([-2000.0, -1000.0, -300.0, 400.0, 3000.0]))
    np.testing.assert_allclose(v.numpy(), [-0.5, -0.5, 0.0, 0.5, 0.5], atol=1e-6)


def test_augment_gives_a_flip_or_axial_turn_of_each_patch():
    x = torch.arange(4 * 5 * 6 * 6, dtype=torch.float32).reshape(4, 1, 5, 6, 6)
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for p, q in zip(x, out):
        views = []
        for fz in (0, 1):
            for fy in (0, 1):
                for fx in (0, 1):
                    dims = [d for d, f in zip((-3, -2, -1), (fz, fy, fx)) if f]
                    f = torch.flip(p, dims) if dims else p
                    views += [torch.rot90(f, k, dims=(-2, -1)) for k in range(4)]
        assert any(torch.equal(q, v) for v in views)
    seen = {
        tuple(augment(x[:1], torch.Generator().manual_seed(s)).flatten()[:8].tolist())
        for s in range(12)
    }
    assert len(seen) > 2  # it does change things


def _tamper(path, key=None, header_edit=None):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    arrays = load_file(str(path))
    if key:
        arrays[key] = arrays[key].copy()
        arrays[key].flat[0] += 0.5
    if header_edit:
        h = json.loads(meta["lungkd"])
        header_edit(h)
        meta = {"lungkd": json.dumps(h)}
    save_file(arrays, str(path), metadata=meta)


def test_file_round_trip_keeps_predictions_and_metadata(student, tmp_path):
    path = save_cnn3d(
        tmp_path / "s.safetensors",
        student,
        "student",
        {"training": {"seed": 3}, "metrics": {"auc": 0.9}},
    )
    model, header = load_cnn3d(path)
    x = np.random.default_rng(0).integers(-1000, 200, (4, 32, 32, 32)).astype(np.int16)
    np.testing.assert_allclose(predict_logits(model, x), predict_logits(student, x), atol=1e-6)
    assert header["arch"] == "student" and header["training"]["seed"] == 3
    assert header["metrics"] == {"auc": 0.9} and len(header["file_sha256"]) == 64


def test_a_changed_weight_is_refused(student, tmp_path):
    path = save_cnn3d(tmp_path / "s.safetensors", student, "student")
    _tamper(path, key="head.weight")
    with pytest.raises(WeightsError, match="do not match their recorded hash"):
        load_cnn3d(path)


def test_a_changed_header_is_refused(student, tmp_path):
    path = save_cnn3d(tmp_path / "s.safetensors", student, "student", {"metrics": {"auc": 0.6}})
    _tamper(path, header_edit=lambda h: h["metrics"].update(auc=0.99))
    with pytest.raises(WeightsError, match="header does not match"):
        load_cnn3d(path)


def test_other_files_are_refused_with_one_sentence(tmp_path):
    from safetensors.numpy import save_file

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_cnn3d(junk)
    other = tmp_path / "other.safetensors"
    save_file(
        {"a": np.zeros(2, np.float32)},
        str(other),
        metadata={"lungkd": json.dumps({"kind": "tree_ensemble"})},
    )
    with pytest.raises(WeightsError, match="not a napari-lungkd 3-D candidate classifier"):
        load_cnn3d(other)
    with pytest.raises(WeightsError, match="does not exist"):
        load_cnn3d(tmp_path / "missing.safetensors")
