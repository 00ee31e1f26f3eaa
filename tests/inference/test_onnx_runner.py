"""The ONNX Runtime runner (the ``fast`` extra): same masks as eager fp32, export cached, one session
per Segmenter."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import synthetic_ct

from napari_lungkd.errors import ModelError, WeightsError
from napari_lungkd.inference import RunSettings, Segmenter, segment
from napari_lungkd.models.specs import get_spec
from napari_lungkd.progress import run_to_end

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def ct():
    return synthetic_ct()


def test_onnx_backend_agrees_with_eager_fp32(ct, tmp_path, monkeypatch):
    from napari_lungkd.inference.onnx_runner import OnnxRunner
    from napari_lungkd.inference.runner import Runner
    from napari_lungkd.inference.torch_runner import load_model
    from napari_lungkd.scoring.metrics import dice

    monkeypatch.setenv("LUNGKD_CACHE_DIR", str(tmp_path))
    loaded = load_model("student", "random")
    eager = segment(ct, loaded, device="cpu")
    fast = segment(ct, loaded, device="cpu", backend="onnx", prepared=eager.prepared)
    assert fast.provenance.backend == "onnx"
    assert dice(eager.mask, fast.mask) >= 0.99
    assert (
        np.abs(eager.probability.astype(np.float32) - fast.probability.astype(np.float32)).max()
        < 1e-2
    )
    assert list((tmp_path / "onnx").glob("student-resnet18-*.onnx"))  # cached for the next run
    assert isinstance(OnnxRunner(loaded, "cpu", 2), Runner)
    with pytest.raises(ModelError, match="Unknown backend"):
        segment(ct, loaded, device="cpu", backend="tensorrt")


def test_one_onnx_session_per_segmenter(ct, tmp_path, monkeypatch):
    import onnxruntime

    monkeypatch.setenv("LUNGKD_CACHE_DIR", str(tmp_path))
    sessions = []
    real = onnxruntime.InferenceSession

    def counting(*args, **kwargs):
        sessions.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", counting)
    segmenter = Segmenter("student", "random", RunSettings(device="cpu", backend="onnx"))
    first = run_to_end(segmenter.iter_segment(ct))
    second = run_to_end(segmenter.iter_segment(ct, first.prepared))
    assert len(sessions) == 1
    assert first.timings.backend_setup > 0 and second.timings.backend_setup == 0.0
    assert np.array_equal(first.mask, second.mask)


def test_onnx_backend_needs_no_torch_module_once_its_export_is_cached(ct, tmp_path, monkeypatch):
    import torch

    from napari_lungkd.inference.torch_runner import load_model
    from napari_lungkd.models.specs import build_model
    from napari_lungkd.models.weights import save_weights

    monkeypatch.setenv("LUNGKD_CACHE_DIR", str(tmp_path / "cache"))
    spec = get_spec("student")
    torch.manual_seed(1)
    state = build_model(spec).state_dict()
    path = tmp_path / "s.safetensors"
    sha = save_weights(path, state, spec, {"metrics": {}})

    first = load_model("student", path, build=False)
    assert not first.is_built
    assert first.n_parameters == 14_321_937  # counted from the file's tensors, buffers left out
    seg = segment(ct, first, device="cpu", backend="onnx")
    assert first.is_built  # nothing cached yet: built (and checked strictly) to export
    assert list((tmp_path / "cache" / "onnx").glob(f"student-resnet18-w{sha[:16]}-*.onnx"))

    again = Segmenter("student", path, device="cpu", backend="onnx")
    seg2 = run_to_end(again.iter_segment(ct))
    assert not again.loaded.is_built  # the cached export was enough
    assert np.array_equal(seg.mask, seg2.mask)
    assert seg2.provenance.n_parameters == 14_321_937
    assert seg2.provenance.weights_sha256 == sha

    # a file that does not fit the model is still refused, when the module is built to export it
    state["segmentation_head.0.bias"] = torch.zeros(2)
    bad = tmp_path / "bad.safetensors"
    save_weights(bad, state, spec, {"metrics": {}})
    with pytest.raises(WeightsError, match="does not fit the model"):
        segment(ct, load_model("student", bad, build=False), device="cpu", backend="onnx")
