"""Segmenter / segment on a tiny synthetic CT with tiny models: results, cancel, OOM, reuse, loading once."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_models import HuThresholdNet, synthetic_ct, tiny_model

from napari_lungkd.ct import CtVolume
from napari_lungkd.errors import ModelError, WeightsError
from napari_lungkd.inference import Provenance, RunSettings, Segmenter, Timings, segment
from napari_lungkd.models.specs import get_spec
from napari_lungkd.progress import Progress, run_to_end


@pytest.fixture(scope="module")
def ct():
    return synthetic_ct()


def test_segment_finds_the_blob_with_geometry_and_provenance(ct):
    seg = segment(ct, tiny_model(), device="cpu")
    assert seg.probability.dtype == np.float16 and seg.probability.shape == ct.shape
    assert seg.mask.dtype == np.uint16 and seg.mask.shape == ct.shape
    truth = ct.hu == 120
    assert (seg.mask.astype(bool) == truth).all()
    assert len(seg.nodules) == 1
    assert set(np.unique(seg.mask)) == {0, 1}  # nodule 0 of the table is label 1 of the mask
    nod = seg.nodules[0]
    assert nod.volume_mm3 == pytest.approx(truth.sum() * 2.5 * 0.8 * 0.8)
    assert nod.centroid_zyx[0] == pytest.approx(3.0)
    assert 6.0 <= nod.diameter_mm <= 9.0  # an 8 mm sphere drawn on 0.8 mm pixels
    assert nod.max_probability > 0.99 and nod.mean_hu == pytest.approx(120)
    p = seg.provenance
    assert isinstance(p, Provenance) and isinstance(seg.timings, Timings)
    assert p.device == "cpu" and p.threshold == 0.5 and p.weights_sha256 == "random-init (testing)"
    assert p.package_version and p.spec["encoder"] == "resnet18"
    assert p.trained_on is None  # a module given in memory says nothing about its training
    for key in ("load", "preprocess", "model", "postprocess", "slices_per_s"):
        assert key in seg.timings.to_dict()
    assert seg.timings.slices == 6
    # both records are plain JSON, warnings as a list
    doc = json.loads(json.dumps({"t": seg.timings.to_dict(), "p": p.to_dict()}))
    assert doc["p"]["model"] == "student" and doc["p"]["warnings"] == []
    assert doc["t"]["slices"] == 6


def test_progress_per_batch_and_cancel_mid_volume(ct):
    import torch

    threads_before = torch.get_num_threads()
    net, spec = tiny_model()
    segmenter = Segmenter((net, spec), device="cpu", batch_size=1, num_threads=1)
    gen = segmenter.iter_segment(ct)
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

    segmenter = Segmenter(tiny_model(), device="cpu", batch_size=2)
    stages = [p.stage for p in segmenter.iter_segment(ct)]
    assert stages.count("model") == 1 + 3  # a start record and one per batch of 2 of 6 slices
    assert stages[-1] == "post-process"


def test_out_of_memory_halves_the_batch(ct):
    net, spec = tiny_model(oom_when=lambda self, x: x.shape[0] > 2)
    seg = segment(ct, (net, spec), device="cpu", batch_size=8)
    assert seg.mask.sum() == (ct.hu == 120).sum()
    assert seg.provenance.batch_size == 2
    assert any("halved" in w for w in seg.provenance.warnings)


def test_cpu_out_of_memory_at_batch_one_is_a_clear_error(ct):
    with pytest.raises(ModelError, match="out of memory on the CPU"):
        segment(ct, tiny_model(oom_when=lambda self, x: True), device="cpu", batch_size=2)


def test_prepared_input_is_reused_only_when_preprocessing_matches(ct):
    first = segment(ct, tiny_model(), device="cpu")
    second = segment(ct, tiny_model(), device="cpu", prepared=first.prepared)
    assert second.provenance.prepared_reused is True and second.timings.preprocess == 0.0
    assert (second.mask == first.mask).all()
    other_spec = get_spec("student").with_(hu_window=(-1200.0, 600.0))
    third = segment(ct, (HuThresholdNet(), other_spec), device="cpu", prepared=first.prepared)
    assert third.provenance.prepared_reused is False


def test_random_student_and_weights_file_provenance(ct, tmp_path, monkeypatch):
    from napari_lungkd.models.specs import build_model
    from napari_lungkd.models.weights import save_weights

    seg = segment(ct, "student", device="cpu", weights="random")
    assert seg.provenance.weights_sha256 == "random-init (testing)"
    assert seg.provenance.n_parameters == 14_321_937
    path = tmp_path / "s.safetensors"
    split = {"reference": "consensus level 0.5 (pylidc)", "seed": 3}
    split["patients"] = {"train": ["P1", "P2"], "val": ["P3"], "test": []}
    sha = save_weights(
        path,
        build_model(get_spec("student")).state_dict(),
        get_spec("student"),
        {"metrics": {}, "data_split": split, "training": {"teacher": "runs/t/best.pt"}},
    )
    seg2 = segment(ct, "student", device="cpu", weights=path)
    assert seg2.provenance.weights_sha256 == sha
    assert seg2.provenance.trained_on == {
        "reference": "consensus level 0.5 (pylidc)",
        "seed": 3,
        "n_patients": {"train": 2, "val": 1, "test": 0},
        "teacher": "runs/t/best.pt",
    }
    monkeypatch.setenv("LUNGKD_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr("napari_lungkd.models.weights.BUNDLED_DIR", tmp_path / "no-bundle")
    with pytest.raises(WeightsError, match="No weights for model 'student'"):
        segment(ct, "student", device="cpu")


def test_bad_volume_and_threshold_are_refused(ct):
    flat = CtVolume(hu=np.zeros((5, 5), np.int16), spacing_mm=(1, 1, 1), source="flat.nii")
    with pytest.raises(ModelError, match="flat.nii is not a 3-D CT"):
        segment(flat, tiny_model(), device="cpu")
    with pytest.raises(ModelError, match="Threshold"):
        segment(ct, tiny_model(), device="cpu", threshold=1.0)


def test_settings_are_frozen_and_checked_when_made():
    import dataclasses

    settings = RunSettings(device="cpu", threshold=0.3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.threshold = 0.4
    assert settings.with_(batch_size=2).batch_size == 2 and settings.batch_size is None
    with pytest.raises(ModelError, match="Unknown backend 'tensorrt'"):
        RunSettings(backend="tensorrt")
    with pytest.raises(ModelError, match="batch_size must be at least 1"):
        RunSettings(batch_size=0)
    with pytest.raises(ModelError, match="Unknown run setting 'treshold'"):
        Segmenter(tiny_model(), treshold=0.3)
    with pytest.raises(ModelError, match="Unknown model"):
        Segmenter("no-such-model")
    segmenter = Segmenter(tiny_model(), settings=settings, batch_size=3)
    assert segmenter.settings == RunSettings(device="cpu", threshold=0.3, batch_size=3)
    assert segmenter.name == "student" and segmenter.threshold == 0.3


def test_one_segmenter_reads_and_hashes_the_weights_file_once(tmp_path, monkeypatch):
    """Acceptance: two CTs through one Segmenter read, hash and build the weights once, and make
    one runner; the second result reports no load time."""
    import napari_lungkd.inference.segmenter as segmenter_module
    import napari_lungkd.inference.torch_runner as torch_runner
    import napari_lungkd.models.weights as weights
    import napari_lungkd.models.weights_file as weights_file
    from napari_lungkd.models.specs import build_model
    from napari_lungkd.phantom import make_phantom

    spec = get_spec("student")
    path = tmp_path / "student.safetensors"
    sha = weights.save_weights(path, build_model(spec).state_dict(), spec, {"metrics": {}})

    calls = {"file_sha256": 0, "load_weights": 0, "build_model": 0, "make_runner": 0}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(
        weights_file, "file_sha256", counting("file_sha256", weights_file.file_sha256)
    )
    monkeypatch.setattr(weights, "load_weights", counting("load_weights", weights.load_weights))
    monkeypatch.setattr(torch_runner, "build_model", counting("build_model", build_model))
    monkeypatch.setattr(
        segmenter_module, "make_runner", counting("make_runner", segmenter_module.make_runner)
    )

    segmenter = Segmenter("student", weights=path, device="cpu", num_threads=1)
    assert calls["load_weights"] == 0  # nothing is read until the first CT (or load())
    cts = [make_phantom(seed, size=64, n_slices=16).to_ct() for seed in (1, 2)]
    first, second = (run_to_end(segmenter.iter_segment(ct)) for ct in cts)
    assert calls == {"file_sha256": 1, "load_weights": 1, "build_model": 1, "make_runner": 1}
    assert first.provenance.weights_sha256 == second.provenance.weights_sha256 == sha
    assert segmenter.weights_sha256 == sha
    assert first.timings.load > 0 and second.timings.load == 0.0
    assert second.timings.backend_setup == 0.0
