"""Checkpoints and logs of a training run: save/load (weights-only pickles), RNG state, CSV log.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so it loads with
``torch.load(weights_only=True)`` (no code runs on load), like the plugin's own loader insists.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from napari_lungkd.errors import TrainingError
from napari_lungkd.files import atomic_path


def load_model_file(path, device):
    """A trained model from a ``.pt`` checkpoint of this script or an exported ``.safetensors``."""
    from napari_lungkd.models.specs import ModelSpec, build_model
    from napari_lungkd.models.weights import load_weights

    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"Model file {path} does not exist (train that model first).")
    if path.suffix == ".pt":
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        spec, state = ModelSpec.from_dict(ckpt["spec"]), ckpt["model"]
    else:
        state, info = load_weights(path)
        spec = info.spec
    model = build_model(spec)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.to(device).eval(), spec


def rng_state(device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_checkpoint(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
