"""Tiny CTs and one-convolution 'models' for the inference tests: fast, exact, no weights file."""

from __future__ import annotations

import numpy as np

from napari_lungkd.ct import CtVolume
from napari_lungkd.models.specs import get_spec

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
