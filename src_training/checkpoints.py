"""Checkpoints and logs of a training run: the one checkpoint reader, trained weights, RNG state, CSV log.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so it loads with
``torch.load(weights_only=True)`` (no code runs on load), like the plugin's own loader insists.
:func:`read_checkpoint` is the only place that reads one: ``train --resume``, the teacher of a
distillation run, ``evaluate`` and ``export`` all go through it (or through :func:`read_weights`,
which also takes an exported ``.safetensors``).
"""

from __future__ import annotations

import csv
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from napari_lungkd.errors import LungKDError, TrainingError
from napari_lungkd.files import atomic_path
from napari_lungkd.models.specs import ModelSpec


def read_checkpoint(path) -> dict:
    """The payload of a training checkpoint (``best.pt`` / ``last.pt``): ``model``, ``spec``, ...

    TrainingError if the file is missing, unreadable or not a checkpoint of ``src_training.train``.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"Checkpoint {path} does not exist (train that model first).")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"Checkpoint {path} cannot be read weights-only ({reason}).") from exc
    if not (isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict) and "spec" in ckpt):
        raise TrainingError(
            f"Checkpoint {path} is not a src_training checkpoint (no model and spec)."
        )
    try:
        ModelSpec.from_dict(ckpt["spec"])
    except (LungKDError, KeyError, TypeError) as exc:
        raise TrainingError(f"Checkpoint {path} has an unusable model spec ({exc}).") from exc
    return ckpt


def write_checkpoint(path: Path, payload: dict) -> None:
    """Write ``payload`` atomically (a crash never leaves half a ``last.pt``)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


@dataclass(frozen=True)
class TrainedWeights:
    """A trained model's tensors and what is known about them."""

    state: dict  # float32 tensors
    spec: ModelSpec
    sha256: str  # of the file
    path: Path
    metadata: dict  # an exported file's header; {} for a checkpoint
    data_split: dict  # the patients the model was trained on (leakage guard)


def read_weights(path) -> TrainedWeights:
    """A trained model from a ``.pt`` checkpoint of this package or an exported ``.safetensors``."""
    from napari_lungkd.models.weights import file_sha256, load_weights

    path = Path(path)
    if path.suffix == ".pt":
        ckpt = read_checkpoint(path)
        state = {k: v.float() for k, v in ckpt["model"].items()}
        spec = ModelSpec.from_dict(ckpt["spec"])
        return TrainedWeights(
            state, spec, file_sha256(path), path, {}, ckpt.get("data_split") or {}
        )
    if not path.is_file():
        raise TrainingError(f"Model file {path} does not exist (train that model first).")
    state, info = load_weights(path)
    state = {k: v.float() for k, v in state.items()}
    split = info.metadata.get("data_split") or {}
    return TrainedWeights(state, info.spec, info.sha256, path, info.metadata, split)


def build_trained(weights: TrainedWeights, device="cpu"):
    """The torch module of ``weights``, in eval mode on ``device``."""
    from napari_lungkd.models.specs import build_model
    from napari_lungkd.models.weights import load_state_into

    model = build_model(weights.spec)
    load_state_into(model, weights.state, weights.path)
    return model.to(device).eval()


def rng_state(device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
