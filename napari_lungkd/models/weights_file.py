"""The weights file format: safetensors + a JSON metadata header, checked by content hash.

The metadata header holds one JSON document under the key ``"lungkd"``::

    {"format": 2, "spec": {...ModelSpec...}, "preprocessing": {...}, "training": {...},
     "data_split": {...}, "metrics": {...}, "package_version": "0.1.0",
     "tensors_sha256": "<hash of every tensor's name, dtype, shape and bytes>",
     "header_sha256": "<hash of this header, without this field, as canonical JSON>"}

``tensors_sha256`` and ``header_sha256`` let a file check itself: a flipped byte in any tensor, or
a threshold changed in the header, is found. Format 1 files (before 0.2) hashed the tensors only,
so their header could be changed unnoticed: they are read only when the SHA-256 of the whole file
is a pinned one (the bundled files and the registry's, :func:`pinned_sha256s`). That file SHA-256
is also what provenance records (:func:`file_sha256`), with a warning when a file is not pinned.
Specs with impossible values and non-finite or mis-shaped tensors are refused. safetensors holds
no pickle, so reading a weights file can never run code; old-style PyTorch checkpoints
(``.pt``/``.pth``) are read only with ``torch.load(weights_only=True)``, after their zip directory
is checked (a zip bomb is refused before it is inflated).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_lungkd import __version__
from napari_lungkd.errors import LungKDError, WeightsError
from napari_lungkd.files import atomic_path
from napari_lungkd.models.specs import ModelSpec
from napari_lungkd.models.weights_checks import (
    check_finite,
    check_header,
    check_scales,
    check_zip,
    header_sha256,
    pinned_sha256s,
)

METADATA_KEY = "lungkd"
FORMAT_VERSION = 2
SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt")


@dataclass(frozen=True)
class WeightsInfo:
    """What a weights file says about itself, and where it is."""

    spec: ModelSpec
    metadata: dict[str, Any]
    sha256: str
    path: Path
    n_tensors: int = 0
    warnings: tuple[str, ...] = field(default=())
    pinned: bool = False
    """The file's SHA-256 is one of the pinned ones (bundled or registry)."""
    format_version: int = FORMAT_VERSION

    def summary(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "model": self.spec.name,
            "encoder": self.spec.encoder,
            "sha256": self.sha256,
            "pinned": self.pinned,
            "format": self.format_version,
            "n_tensors": self.n_tensors,
            "package_version": self.metadata.get("package_version"),
            "metrics": self.metadata.get("metrics", {}),
            "trained_on": self.trained_on,
        }

    @property
    def trained_on(self) -> dict[str, Any] | None:
        return trained_on(self.metadata)


def trained_on(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a weights header says the weights were trained on, in short: the reference masks, the
    split (file, seed, patients and cases per part) and the teacher; None when it says nothing."""
    metadata = metadata or {}
    split = metadata.get("data_split") or {}
    training = metadata.get("training") or {}
    out: dict[str, Any] = {}
    for key in ("reference", "split_file", "seed"):
        if split.get(key) is not None:
            out[key] = split[key]
    for key in ("patients", "cases"):
        parts = split.get(key)
        if isinstance(parts, dict):
            out[f"n_{key}"] = {part: len(ids or ()) for part, ids in parts.items()}
    if training.get("teacher"):
        out["teacher"] = str(training["teacher"])
    config = training.get("config")
    if isinstance(config, dict) and config.get("name"):
        out["config"] = config["name"]
    return out or None


def _network(spec: ModelSpec) -> dict:
    """What must match between a model name and a weights file: the encoder and the classes. The
    input channels are the file's own choice (``context_slices``: 2-D or 2.5-D input), which the
    model is then built with."""
    return {k: v for k, v in spec.architecture().items() if k != "in_channels"}


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tensors_sha256(state_dict) -> str:
    """A hash of every tensor (name, dtype, shape, bytes), independent of the file layout."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(dtype=_byte_dtype()).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _byte_dtype():
    import torch

    return torch.uint8


def save_weights(
    path, state_dict, spec: ModelSpec, metadata: dict | None = None, overwrite: bool = True
) -> str:
    """Write ``state_dict`` + ``spec`` + ``metadata`` to a safetensors file atomically; return its SHA-256.

    ``metadata`` may hold ``training``, ``data_split``, ``metrics`` and anything else JSON-able.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != SUFFIX:
        raise WeightsError(f"Weights file {path} must end in {SUFFIX}.")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    header = dict(metadata or {})
    header.update(
        {
            "format": FORMAT_VERSION,
            "spec": spec.to_dict(),
            "preprocessing": spec.preprocessing(),
            "package_version": header.get("package_version", __version__),
            "tensors_sha256": tensors_sha256(tensors),
        }
    )
    try:
        header = json.loads(json.dumps(header, allow_nan=False, default=str))  # as it will be read
        header["header_sha256"] = header_sha256(header)
        text = json.dumps(header, allow_nan=False)
    except ValueError as exc:
        raise WeightsError(f"Metadata for weights file {path} is not valid JSON ({exc}).") from exc
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: text})
    return file_sha256(path)


def _read_safetensors(path: Path):
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(
            f"Weights file {path} is not a readable safetensors file ({exc})."
        ) from exc
    if METADATA_KEY not in meta:
        raise WeightsError(
            f"Weights file {path} has no napari-lungkd metadata header (key {METADATA_KEY!r})."
        )
    try:
        header = json.loads(meta[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise WeightsError(f"Weights file {path} has a broken metadata header ({exc}).") from exc
    if not isinstance(header, dict):
        raise WeightsError(f"Weights file {path} has a metadata header that is not a JSON object.")
    return state, header


def _read_pickled(path: Path, expected_spec: ModelSpec | None):
    import pickle

    import torch

    check_zip(path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as exc:
        raise WeightsError(
            f"Checkpoint {path} holds Python objects that could run code when unpickled; it was not "
            "loaded (only weights_only=True loads are allowed) - export it to .safetensors with "
            "src_training's export step."
        ) from exc
    except (OSError, EOFError) as exc:
        raise WeightsError(f"Checkpoint {path} cannot be read ({exc}).") from exc
    if not isinstance(obj, dict):
        raise WeightsError(f"Checkpoint {path} does not hold a state dict.")
    header: dict[str, Any] = {}
    state = obj
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj.get(key), dict):
            state = obj[key]
            header = {
                k: v for k, v in obj.items() if k != key and isinstance(v, (dict, str, int, float))
            }
            break
    if "spec" not in header:
        if expected_spec is None:
            raise WeightsError(
                f"Checkpoint {path} does not say which model it is for; pass the model name."
            )
        header["spec"] = expected_spec.to_dict()
    if not all(hasattr(v, "shape") for v in state.values()):
        raise WeightsError(f"Checkpoint {path} holds entries that are not tensors.")
    return state, header


def load_weights(
    path,
    expected_spec: ModelSpec | None = None,
    expected_sha256: str | None = None,
    registry=None,
):
    """Read and check a weights file; return ``(state_dict, WeightsInfo)``.

    Refuses (WeightsError) a file whose SHA-256 is not ``expected_sha256``, whose tensors or header
    do not match the hashes in its header (tampered or corrupted), a format-1 file that is not
    pinned (see the module docstring), a spec with impossible values, non-finite tensors, or an
    architecture that is not the one of ``expected_spec``. ``registry``: the registry whose
    hashes count as pinned (default: the bundled one).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Weights file {path} does not exist.")
    sha = file_sha256(path)
    if expected_sha256 and sha.lower() != expected_sha256.lower():
        raise WeightsError(
            f"Weights file {path} has SHA-256 {sha[:12]}..., not the expected {expected_sha256[:12]}...; it was changed or is the wrong file."
        )
    warnings: list[str] = []
    pinned = bool(expected_sha256) or sha.lower() in pinned_sha256s(registry)
    version = 0
    if path.suffix in PICKLE_SUFFIXES:
        state, header = _read_pickled(path, expected_spec)
        warnings.append(
            f"{path.name} is a PyTorch checkpoint without a content hash (loaded weights-only)."
        )
    else:
        state, header = _read_safetensors(path)
        version = check_header(path, header, pinned, FORMAT_VERSION)
        want = header.get("tensors_sha256")
        if not want:
            raise WeightsError(
                f"Weights file {path} has no tensors_sha256 in its header, so it cannot be verified."
            )
        if tensors_sha256(state) != want:
            raise WeightsError(
                f"Weights file {path} fails its content check (tensors changed after it was written); it was tampered with or corrupted."
            )
    check_scales(state, path)
    state = _to_float(state, path)
    check_finite(state, path)
    try:
        spec = ModelSpec.from_dict(header["spec"])
    except (LungKDError, TypeError, KeyError, ValueError) as exc:
        raise WeightsError(f"Weights file {path} has an unusable model spec ({exc}).") from exc
    if not pinned:
        warnings.append(
            f"{path.name} (SHA-256 {sha[:12]}...) is not one of the pinned weights files "
            "(bundled or registry); results name this file and its SHA-256"
        )
    if expected_spec is not None and _network(spec) != _network(expected_spec):
        raise WeightsError(
            f"Weights file {path} is for {spec.architecture()}, not for model {expected_spec.name!r} {expected_spec.architecture()}."
        )
    info = WeightsInfo(
        spec=spec,
        metadata=header,
        sha256=sha,
        path=path,
        n_tensors=len(state),
        warnings=tuple(warnings),
        pinned=pinned,
        format_version=version,
    )
    return state, info


def _to_float(state: dict, path: Path) -> dict:
    """Undo int8 per-channel compression (see :mod:`napari_lungkd.models.quant`); fp16 tensors
    are cast by ``load_state_dict`` itself."""
    from napari_lungkd.models.quant import dequantise, is_int8

    if not is_int8(state):
        return state
    try:
        return dequantise(state)
    except KeyError as exc:
        raise WeightsError(
            f"Weights file {path} has an int8 tensor without its scale ({exc})."
        ) from None


def load_state_into(model, state_dict, path) -> None:
    """Load tensors into ``model`` strictly; a missing, extra or mis-shaped tensor is a WeightsError."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    extra = sorted(set(state_dict) - set(own))
    bad = [k for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    if missing or extra or bad:
        parts = []
        if bad:
            k = bad[0]
            parts.append(
                f"{len(bad)} tensors of the wrong shape (e.g. {k}: {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)})"
            )
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
        raise WeightsError(f"Weights file {path} does not fit the model: {'; '.join(parts)}.")
    model.load_state_dict(state_dict, strict=True)
