"""Smaller weights files: fp16 tensors, or int8 with one scale per output channel.

The bundled teacher (67 M parameters) is 134 MB in fp16, over the 95 MB a file may weigh in the
repository, and 67 MB in int8. Quantisation is symmetric and per output channel (dim 0 of a
convolution weight): ``w ≈ q * scale`` with ``q`` in [-127, 127]; only large float tensors
(``numel >= min_numel``) are quantised, so biases and batch-norm statistics keep full precision.
In the file a quantised tensor ``name`` becomes ``name + INT8_SUFFIX`` (int8) and
``name + SCALE_SUFFIX`` (float32, shape ``(C_out, 1, 1, ...)``); :func:`dequantise` undoes it at
load time, so the model always runs in float32.
"""

from __future__ import annotations

INT8_SUFFIX = ".__int8__"
SCALE_SUFFIX = ".__scale__"
SCHEMES = ("fp32", "fp16", "int8")


def compress(state_dict, scheme: str = "fp32", min_numel: int = 4096) -> dict:
    """Return a new state dict in ``scheme`` (fp32 as it is, fp16, or int8 per output channel)."""
    import torch

    if scheme not in SCHEMES:
        raise ValueError(f"unknown weights precision {scheme!r} (choose from {SCHEMES})")
    out = {}
    for name, t in state_dict.items():
        t = t.detach().cpu()
        if not t.is_floating_point() or scheme == "fp32":
            out[name] = t.contiguous()
        elif scheme == "fp16" or t.numel() < min_numel or t.ndim < 2:
            out[name] = (t.half() if scheme == "fp16" else t.float()).contiguous()
        else:
            w = t.float()
            amax = w.abs().reshape(w.shape[0], -1).amax(dim=1).clamp_min(1e-12)
            scale = (amax / 127.0).reshape(-1, *([1] * (w.ndim - 1)))
            q = torch.round(w / scale).clamp_(-127, 127).to(torch.int8)
            out[name + INT8_SUFFIX] = q.contiguous()
            out[name + SCALE_SUFFIX] = scale.contiguous()
    return out


def is_int8(state_dict) -> bool:
    return any(k.endswith(INT8_SUFFIX) for k in state_dict)


def dequantise(state_dict) -> dict:
    """Turn int8 pairs back into float32 tensors; everything else is returned as it is."""
    out = {}
    for name, t in state_dict.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        if name.endswith(INT8_SUFFIX):
            base = name[: -len(INT8_SUFFIX)]
            scale = state_dict.get(base + SCALE_SUFFIX)
            if scale is None:
                raise KeyError(f"int8 tensor {base!r} has no scale")
            out[base] = t.float() * scale.float()
        else:
            out[name] = t
    return out
