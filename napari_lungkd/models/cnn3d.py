"""3-D CNN false-positive classifiers on isotropic candidate patches, and their verified file.

Input: ``(N, 1, 32, 32, 32)`` HU patches at 1 mm around each U-Net candidate
(:func:`~napari_lungkd.inference.candidate_patches.candidate_patches`, int16 or float); output:
one logit per candidate (``(N,)``; nodule probability ``sigmoid(logit)``). The networks window
the HU themselves (:func:`normalise_hu`: -1000..400 HU -> -0.5..0.5), so raw patches go in.

Two architectures, chosen by name (``ARCHS``):

- ``teacher``: a small 3-D ResNet (stem at 32³, strided convolutions to 16³ / 8³ / 4³,
  residual blocks of 64 and 128 channels at 8³ and 4³), about 2 M parameters;
- ``student``: a plain 3-D CNN (8 -> 16 -> 32 -> 48 channels, one convolution per scale),
  about 60 k parameters.

:func:`augment` gives the training augmentation (random flips along z, y and x, and a random
multiple of 90° in the axial y-x plane, each sample on its own).

The file is safetensors (no pickle) with a JSON header under ``"lungkd"``, checked like the
boosted-tree classifier's (:mod:`napari_lungkd.models.tree_ensemble`)::

    {"format": 1, "kind": "cnn3d", "arch": "student", "window_hu": [-1000, 400],
     "training": {...seed...}, "data_split": {...}, "metrics": {...auc...}, "package_version": ...,
     "tensors_sha256": "...", "header_sha256": "..."}

A changed tensor or header value is refused (:class:`~napari_lungkd.errors.WeightsError`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from napari_lungkd import __version__
from napari_lungkd.errors import WeightsError
from napari_lungkd.files import atomic_path
from napari_lungkd.models.tree_ensemble import arrays_sha256, header_sha256, read_checked_file

METADATA_KEY = "lungkd"
KIND = "cnn3d"
FORMAT_VERSION = 1
PATCH_SHAPE = (32, 32, 32)
WINDOW_HU = (-1000.0, 400.0)
"""Lung window: air to bone-free soft tissue; nodules, vessels and pleura all fall inside."""


def normalise_hu(x: torch.Tensor, window_hu=WINDOW_HU) -> torch.Tensor:
    """HU -> ``[-0.5, 0.5]`` over ``window_hu`` (clipped outside), as float32."""
    lo, hi = (float(v) for v in window_hu)
    return ((x.float() - lo) / (hi - lo)).clamp(0.0, 1.0) - 0.5


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    )


class ResBlock3d(nn.Module):
    """Two 3×3×3 convolutions with an identity shortcut (same channels, same size)."""

    def __init__(self, ch: int):
        super().__init__()
        self.a = _conv(ch, ch)
        self.b = nn.Sequential(nn.Conv3d(ch, ch, 3, padding=1, bias=False), nn.BatchNorm3d(ch))

    def forward(self, x):
        return torch.relu(x + self.b(self.a(x)))


class PatchNet3d(nn.Module):
    """Windowing, a convolutional trunk, global average + max pooling, one linear logit."""

    def __init__(self, trunk: nn.Module, channels: int, window_hu=WINDOW_HU):
        super().__init__()
        self.window_hu = tuple(float(v) for v in window_hu)
        self.trunk = trunk
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(2 * channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # (N, 32, 32, 32): add the channel axis
            x = x.unsqueeze(1)
        f = self.trunk(normalise_hu(x, self.window_hu))
        pooled = torch.cat([f.mean(dim=(2, 3, 4)), f.amax(dim=(2, 3, 4))], dim=1)
        return self.head(self.drop(pooled)).squeeze(1)


def build_teacher() -> PatchNet3d:
    trunk = nn.Sequential(
        _conv(1, 16),  # 32³
        _conv(16, 32, stride=2),  # 16³
        _conv(32, 64, stride=2),  # 8³
        ResBlock3d(64),
        _conv(64, 128, stride=2),  # 4³
        ResBlock3d(128),
        ResBlock3d(128),
    )
    return PatchNet3d(trunk, 128)


def build_student() -> PatchNet3d:
    trunk = nn.Sequential(
        _conv(1, 8, stride=2),  # 16³
        _conv(8, 16),
        nn.MaxPool3d(2),  # 8³
        _conv(16, 32),
        nn.MaxPool3d(2),  # 4³
        _conv(32, 48),
    )
    return PatchNet3d(trunk, 48)


ARCHS = {"teacher": build_teacher, "student": build_student}


def build(arch: str) -> PatchNet3d:
    if arch not in ARCHS:
        raise ValueError(f"unknown 3-D classifier architecture {arch!r} (known: {sorted(ARCHS)})")
    return ARCHS[arch]()


def n_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each patch of ``x`` ``(N, [1,] z, y, x)`` flipped at random along z, y and x and rotated by
    a random multiple of 90° in the y-x plane (the 32 symmetries that keep the axial plane)."""
    n = x.shape[0]
    flips = torch.randint(0, 2, (n, 3), generator=generator)
    turns = torch.randint(0, 4, (n,), generator=generator)
    out = []
    for i in range(n):
        p = x[i]
        dims = [d - 3 for d in range(3) if flips[i, d]]  # -3: z, -2: y, -1: x
        if dims:
            p = torch.flip(p, dims)
        if turns[i]:
            p = torch.rot90(p, int(turns[i]), dims=(-2, -1))
        out.append(p)
    return torch.stack(out)


@torch.no_grad()
def predict_logits(model: nn.Module, patches, batch: int = 64) -> np.ndarray:
    """Logits of ``patches`` ``(n, 32, 32, 32)`` HU in eval mode, ``batch`` at a time."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(patches), batch):
        x = torch.as_tensor(np.asarray(patches[i : i + batch])).to(device)
        out.append(model(x).float().cpu().numpy())
    model.train(was)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def save_cnn3d(path, model: PatchNet3d, arch: str, metadata: dict | None = None) -> Path:
    """Write ``model`` (an ``arch`` network) and ``metadata`` as a verified safetensors file."""
    from safetensors.numpy import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"Classifier file {path} must end in .safetensors.")
    arrays = {
        k: np.ascontiguousarray(v.detach().cpu().numpy()) for k, v in model.state_dict().items()
    }
    header = dict(metadata or {})
    header.update(
        {
            "format": FORMAT_VERSION,
            "kind": KIND,
            "arch": arch,
            "window_hu": list(model.window_hu),
            "patch_shape": list(PATCH_SHAPE),
            "n_parameters": n_parameters(model),
            "package_version": header.get("package_version", __version__),
            "tensors_sha256": arrays_sha256(arrays),
        }
    )
    header["header_sha256"] = header_sha256(header)
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp), metadata={METADATA_KEY: json.dumps(header)})
    return path


def load_cnn3d(path) -> tuple[PatchNet3d, dict]:
    """The network of a 3-D classifier file (eval mode) and its header, after every check;
    :class:`WeightsError` with one sentence when the file is not one or was changed."""
    path = Path(path)
    header, arrays = read_checked_file(path, KIND, "3-D candidate classifier")
    if header.get("arch") not in ARCHS:
        raise WeightsError(f"{path} holds an unknown architecture {header.get('arch')!r}.")
    model = build(header["arch"])
    model.window_hu = tuple(float(v) for v in header.get("window_hu", WINDOW_HU))
    state = {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise WeightsError(
            f"{path} does not fit the {header['arch']} architecture of this version."
        ) from None
    if not all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()):
        raise WeightsError(f"{path} holds non-finite weights.")
    header["file_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    header["path"] = str(path)
    return model.eval(), header
