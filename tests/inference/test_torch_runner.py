"""The PyTorch runner: devices (checked against torch's own answers), the Runner protocol, a stand-in
GPU that runs out of memory (injected into a Segmenter as its runner)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from tiny_models import synthetic_ct, tiny_model

from napari_lungkd.errors import ModelError
from napari_lungkd.inference import Segmenter, segment
from napari_lungkd.inference.runner import Runner
from napari_lungkd.inference.torch_runner import (
    BatchRunner,
    LoadedModel,
    available_devices,
    resolve_device,
)
from napari_lungkd.progress import run_to_end


@pytest.fixture(scope="module")
def ct():
    return synthetic_ct()


def _has_mps(torch) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def test_device_list_follows_what_torch_reports(monkeypatch):
    """The list is checked against set answers of torch, not against the same logic."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert available_devices() == ["cpu"]
    assert str(resolve_device("auto")) == "cpu"
    for missing in ("cuda", "cuda:0", "mps"):
        with pytest.raises(ModelError, match=f"Device '{missing}' is not available"):
            resolve_device(missing)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert available_devices() == ["cuda", "cuda:0", "cuda:1", "cpu"]
    assert str(resolve_device("auto")) == "cuda" and str(resolve_device("cuda:1")) == "cuda:1"
    with pytest.raises(ModelError, match="'cuda:2' is not available"):
        resolve_device("cuda:2")

    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
        assert available_devices() == ["mps", "cpu"]


def test_every_device_of_this_machine_segments_and_a_missing_one_is_refused(ct):
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    devices += ["mps"] if _has_mps(torch) else []
    for device in devices:
        seg = segment(ct, tiny_model(), device=device)
        assert seg.provenance.device.startswith(device.split(":")[0])
        assert seg.mask.sum() == (ct.hu == 120).sum()
    for missing, present in (("cuda", torch.cuda.is_available()), ("mps", _has_mps(torch))):
        if not present:
            with pytest.raises(ModelError, match=f"Device '{missing}' is not available"):
                segment(ct, tiny_model(), device=missing)


def test_batch_runner_is_a_runner():
    net, spec = tiny_model()
    runner = BatchRunner(LoadedModel(net, spec), "cpu", 2)
    assert isinstance(runner, Runner)
    assert runner.precision == "fp32" and runner.setup_seconds >= 0.0
    out = runner.predict(np.zeros((3, 1, 32, 32), np.float32))
    assert out.shape == (3, 32, 32) and out.dtype == np.float32


class StandInGpuRunner(BatchRunner):
    """A BatchRunner on a pretend GPU: moves are flags, the model raises OOM until on the CPU."""

    def __init__(self, loaded, batch_size):
        super().__init__(loaded, "cuda", batch_size)

    def _move_module(self, device) -> None:
        import torch

        self.loaded.module.on_gpu = torch.device(device).type == "cuda"

    def _place(self, x):
        import torch

        return torch.from_numpy(np.ascontiguousarray(x))

    def autocast(self):
        return contextlib.nullcontext()

    def _free(self) -> None:
        pass

    @property
    def precision(self) -> str:
        return "test"


def test_out_of_memory_on_gpu_falls_back_to_cpu(ct):
    net, spec = tiny_model(oom_when=lambda self, x: self.on_gpu)
    made = []

    def factory(loaded, device, batch_size, threads):
        made.append(StandInGpuRunner(loaded, batch_size))
        return made[-1]

    segmenter = Segmenter((net, spec), device="cpu", batch_size=4, runner_factory=factory)
    seg = run_to_end(segmenter.iter_segment(ct))
    assert seg.provenance.device == "cpu"
    warnings = " ".join(seg.provenance.warnings)
    assert "halved to 1" in warnings and "fell back to the CPU" in warnings
    assert seg.mask.sum() == (ct.hu == 120).sum()
    # the runner is the Segmenter's: a second CT uses it as it is now (on the CPU), no new warning
    again = run_to_end(segmenter.iter_segment(ct))
    assert len(made) == 1 and again.provenance.warnings == ()
    assert np.array_equal(again.mask, seg.mask)
