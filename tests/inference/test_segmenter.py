"""segment / iter_segment on a tiny synthetic CT with tiny models: devices, cancel, OOM, reuse."""

from __future__ import annotations

import numpy as np
import pytest

from napari_lungkd.ct import CtVolume
from napari_lungkd.errors import ModelError, WeightsError
from napari_lungkd.inference.segmenter import iter_segment, segment
from napari_lungkd.models.specs import get_spec
from napari_lungkd.progress import Progress

SPACING_MM = (2.5, 0.8, 0.8)


def synthetic_ct(n_slices: int = 6, size: int = 96) -> CtVolume:
    """A body (40 HU) in air, two dark lungs (-850 HU) and a bright 'nodule' (120 HU) in the right one."""
    hu = np.full((n_slices, size, size), -1000, np.int16)
    yy, xx = np.mgrid[:size, :size]
    c = size / 2
    hu[:, ((yy - c) / (0.42 * size)) ** 2 + ((xx - c) / (0.46 * size)) ** 2 < 1] = 40
    for cx in (0.31 * size, 0.69 * size):
        hu[:, ((yy - c) / (0.26 * size)) ** 2 + ((xx - cx) / (0.13 * size)) ** 2 < 1] = -850
    zz = np.arange(n_slices)[:, None, None]
    blob = ((zz - n_slices // 2) * SPACING_MM[0]) ** 2 + ((yy - c) * 0.8) ** 2 + (
        (xx - 0.69 * size) * 0.8
    ) ** 2 < 4.0**2
    hu[blob] = 120
    return CtVolume(
        hu=hu, spacing_mm=SPACING_MM, origin_mm=(-38.4, -38.4, 0.0), source="synthetic-test"
    )


class HuThresholdNet:
    """A one-convolution 'model' whose logit is positive above 70 HU: it finds the bright blob."""

    def __new__(cls, oom_when=None):
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(1, 1, 1)
                with torch.no_grad():
                    self.conv.weight.fill_(200.0)
                    self.conv.bias.fill_(-200.0 * (70 + 1000) / 1400)
                self.calls = []
                self.on_gpu = False

            def forward(self, x):
                self.calls.append(x.shape[0])
                if oom_when is not None and oom_when(self, x):
                    raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
                return self.conv(x)

        return Net()


def tiny_model(**kw):
    return (HuThresholdNet(**kw), get_spec("student"))


@pytest.fixture(scope="module")
def ct():
    return synthetic_ct()


def test_segment_finds_the_blob_with_geometry_and_provenance(ct):
    seg = segment(ct, tiny_model(), device="cpu")
    assert seg.probability.dtype == np.float16 and seg.probability.shape == ct.shape
    assert seg.mask.dtype == np.uint8 and seg.mask.shape == ct.shape
    truth = ct.hu == 120
    assert (seg.mask.astype(bool) == truth).all()
    assert len(seg.nodules) == 1
    nod = seg.nodules[0]
    assert nod.volume_mm3 == pytest.approx(truth.sum() * 2.5 * 0.8 * 0.8)
    assert nod.centroid_zyx[0] == pytest.approx(3.0)
    assert 6.0 <= nod.diameter_mm <= 9.0  # an 8 mm sphere drawn on 0.8 mm pixels
    assert nod.max_probability > 0.99 and nod.mean_hu == pytest.approx(120)
    p = seg.provenance
    assert (
        p["device"] == "cpu"
        and p["threshold"] == 0.5
        and p["weights_sha256"] == "random-init (testing)"
    )
    assert p["package_version"] and p["spec"]["encoder"] == "resnet18"
    for key in ("load", "preprocess", "model", "postprocess", "slices_per_s"):
        assert key in seg.timings
    assert seg.timings["slices"] == 6


def test_every_available_device_and_refusal_of_a_missing_one(ct):
    from napari_lungkd.inference.torch_runner import available_devices

    for device in available_devices():
        seg = segment(ct, tiny_model(), device=device)
        assert seg.provenance["device"].startswith(device.split(":")[0])
        assert seg.mask.sum() == (ct.hu == 120).sum()
    for missing in ("cuda", "mps"):
        if missing not in available_devices():
            with pytest.raises(ModelError, match=f"Device '{missing}' is not available"):
                segment(ct, tiny_model(), device=missing)


def test_progress_per_batch_and_cancel_mid_volume(ct):
    import torch

    threads_before = torch.get_num_threads()
    net, spec = tiny_model()
    gen = iter_segment(ct, (net, spec), device="cpu", batch_size=1, num_threads=1)
    seen = []
    for p in gen:
        assert isinstance(p, Progress)
        seen.append(p)
        if p.stage == "model" and p.done == 2:
            break
    gen.close()  # the user pressed Cancel
    with pytest.raises(StopIteration):
        next(gen)
    assert len(net.calls) == 2  # the model stopped after the second batch
    assert torch.get_num_threads() == threads_before
    assert any(p.stage == "preprocess" for p in seen)
    assert "slices/s" in seen[-1].detail

    stages = [p.stage for p in iter_segment(ct, tiny_model(), device="cpu", batch_size=2)]
    assert stages.count("model") == 1 + 3  # a start record and one per batch of 2 of 6 slices
    assert stages[-1] == "post-process"


def test_out_of_memory_halves_the_batch(ct):
    net, spec = tiny_model(oom_when=lambda self, x: x.shape[0] > 2)
    seg = segment(ct, (net, spec), device="cpu", batch_size=8)
    assert seg.mask.sum() == (ct.hu == 120).sum()
    assert seg.provenance["batch_size"] == 2
    assert any("halved" in w for w in seg.provenance["warnings"])


def test_out_of_memory_on_gpu_falls_back_to_cpu(ct, monkeypatch):
    """A stand-in GPU: device moves are no-ops, the model raises OOM until moved to the CPU."""
    import contextlib

    import torch

    from napari_lungkd.inference import torch_runner as predictor

    net, spec = tiny_model(oom_when=lambda self, x: self.on_gpu)
    monkeypatch.setattr(predictor, "resolve_device", lambda device: torch.device("cuda"))

    def fake_move(self, device):
        self.loaded.module.on_gpu = torch.device(device).type == "cuda"

    monkeypatch.setattr(predictor.BatchRunner, "_move_module", fake_move)
    monkeypatch.setattr(
        predictor.BatchRunner, "_place", lambda self, x: torch.from_numpy(np.ascontiguousarray(x))
    )
    monkeypatch.setattr(predictor.BatchRunner, "autocast", lambda self: contextlib.nullcontext())
    monkeypatch.setattr(predictor.BatchRunner, "_free", lambda self: None)
    monkeypatch.setattr(predictor.BatchRunner, "precision", property(lambda self: "test"))
    seg = segment(ct, (net, spec), device="cuda", batch_size=4)
    assert seg.provenance["device"] == "cpu"
    warnings = " ".join(seg.provenance["warnings"])
    assert "halved to 1" in warnings and "fell back to the CPU" in warnings
    assert seg.mask.sum() == (ct.hu == 120).sum()


def test_cpu_out_of_memory_at_batch_one_is_a_clear_error(ct):
    with pytest.raises(ModelError, match="out of memory on the CPU"):
        segment(ct, tiny_model(oom_when=lambda self, x: True), device="cpu", batch_size=2)


def test_prepared_input_is_reused_only_when_preprocessing_matches(ct):
    first = segment(ct, tiny_model(), device="cpu")
    second = segment(ct, tiny_model(), device="cpu", prepared=first.prepared)
    assert second.provenance["prepared_reused"] is True and second.timings["preprocess"] == 0.0
    assert (second.mask == first.mask).all()
    other_spec = get_spec("student").with_(hu_window=(-1200.0, 600.0))
    third = segment(ct, (HuThresholdNet(), other_spec), device="cpu", prepared=first.prepared)
    assert third.provenance["prepared_reused"] is False


def test_random_student_and_weights_file_provenance(ct, tmp_path, monkeypatch):
    from napari_lungkd.models.specs import build_model
    from napari_lungkd.models.weights import save_weights

    seg = segment(ct, "student", device="cpu", weights="random")
    assert seg.provenance["weights_sha256"] == "random-init (testing)"
    assert seg.provenance["n_parameters"] == 14_321_937
    path = tmp_path / "s.safetensors"
    sha = save_weights(
        path, build_model(get_spec("student")).state_dict(), get_spec("student"), {"metrics": {}}
    )
    seg2 = segment(ct, "student", device="cpu", weights=path)
    assert seg2.provenance["weights_sha256"] == sha
    monkeypatch.setenv("LUNGKD_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr("napari_lungkd.models.weights.BUNDLED_DIR", tmp_path / "no-bundle")  # none shipped
    with pytest.raises(WeightsError, match="No weights for model 'student'"):
        segment(ct, "student", device="cpu")


def test_bad_volume_and_threshold_are_refused(ct):
    flat = CtVolume(hu=np.zeros((5, 5), np.int16), spacing_mm=(1, 1, 1), source="flat.nii")
    with pytest.raises(ModelError, match="flat.nii is not a 3-D CT"):
        segment(flat, tiny_model(), device="cpu")
    with pytest.raises(ModelError, match="Threshold"):
        segment(ct, tiny_model(), device="cpu", threshold=1.0)


def test_onnx_backend_agrees_with_eager_fp32(ct, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from napari_lungkd.inference.onnx_runner import agreement
    from napari_lungkd.inference.torch_runner import load_model

    monkeypatch.setenv("LUNGKD_CACHE_DIR", str(tmp_path))
    loaded = load_model("student", "random")
    eager = segment(ct, loaded, device="cpu")
    fast = segment(ct, loaded, device="cpu", backend="onnx", prepared=eager.prepared)
    assert fast.provenance["backend"] == "onnx"
    assert agreement(eager.mask, fast.mask) >= 0.99
    assert (
        np.abs(eager.probability.astype(np.float32) - fast.probability.astype(np.float32)).max()
        < 1e-2
    )
    assert list((tmp_path / "onnx").glob("student-resnet18-*.onnx"))  # cached for the next run
    with pytest.raises(ModelError, match="Unknown backend"):
        segment(ct, loaded, device="cpu", backend="tensorrt")


def test_onnx_backend_needs_no_torch_module_once_its_export_is_cached(ct, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
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

    again = load_model("student", path, build=False)
    seg2 = segment(ct, again, device="cpu", backend="onnx")
    assert not again.is_built  # the cached export was enough
    assert np.array_equal(seg.mask, seg2.mask)
    assert seg2.provenance["n_parameters"] == 14_321_937
    assert seg2.provenance["weights_sha256"] == sha

    # a file that does not fit the model is still refused, when the module is built to export it
    state["segmentation_head.0.bias"] = torch.zeros(2)
    bad = tmp_path / "bad.safetensors"
    save_weights(bad, state, spec, {"metrics": {}})
    with pytest.raises(WeightsError, match="does not fit the model"):
        segment(ct, load_model("student", bad, build=False), device="cpu", backend="onnx")
