"""Training configuration: a YAML file over these defaults, plus ``--set key.sub=value`` overrides.

One config decides the regime: ``teacher: null`` trains without distillation (the teacher itself,
or the baseline student); ``teacher: PATH`` (a ``best.pt`` checkpoint or an exported
``.safetensors``) distils that model into this one. A teacher-assistant chain is two KD runs: the
assistant distils from the teacher, the student from the assistant (configs/assistant_kd.yaml,
configs/student_ta.yaml).

Relative paths in a config are resolved against the current directory (run from the repo root).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from napari_lungkd.errors import TrainingError

DEFAULTS: dict[str, Any] = {
    "name": "run",
    "model": "student",  # a napari_lungkd.models.specs spec name: student, teacher, assistant34, assistant50
    "encoder": None,  # override the spec's encoder (e.g. a smaller teacher for tiny tests)
    "context_slices": 1,  # 1 = 2-D as in the thesis; 3 or 5 = 2.5-D
    "seed": 0,
    "cache": "data/cache",
    "split": None,  # default: <cache>/split.json
    "out": "runs/run",
    "teacher": None,  # null = no distillation; else the teacher's best.pt or .safetensors
    "device": "auto",
    "data": {
        "crop_size": 256,
        "batch_size": 16,
        "samples_per_epoch": 4000,
        "pos_fraction": 0.5,
        "num_workers": 4,
        "val_batch_size": 16,
        "val_max_negative": 8,
    },
    "augment": {
        "flip_p": 0.5,
        "flip_ud_p": 0.0,
        "rotate_deg": 10.0,
        "scale": 0.1,
        "intensity": 0.05,
    },
    "optim": {
        "epochs": 40,
        "lr": 3.0e-4,
        "weight_decay": 1.0e-4,
        "warmup_steps": 200,
        "min_lr_ratio": 0.01,
        "grad_clip": 1.0,
        "amp": True,
        "checkpoint_every_steps": 0,  # 0: only at the end of each epoch
    },
    "loss": {"dice": 1.0, "bce": 1.0},
    "distill": {
        "temperature": 4.0,
        "response": 0.5,
        "attention": 0.0,
        "region_affinity": 0.0,
        "channel_wise": 0.0,
        "cwd_tau": 4.0,
        "stages": [3, 4, 5],
    },
}


def _merge(base: dict, over: dict, where: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, val in (over or {}).items():
        if key not in base:
            raise TrainingError(f"Config key {where}{key!r} is not known (known: {sorted(base)}).")
        if isinstance(base[key], dict) and isinstance(val, dict):
            out[key] = _merge(base[key], val, f"{where}{key}.")
        else:
            out[key] = val
    return out


def set_value(cfg: dict, dotted: str, text: str) -> None:
    """Apply one ``key.sub=value`` override (the value is parsed as YAML: numbers, null, lists)."""
    keys = dotted.split(".")
    node = cfg
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            raise TrainingError(f"Config override {dotted!r}: {k!r} is not a section.")
        node = node[k]
    if keys[-1] not in node:
        raise TrainingError(f"Config override {dotted!r}: unknown key {keys[-1]!r}.")
    node[keys[-1]] = yaml.safe_load(text)


def load_config(path=None, overrides=()) -> dict:
    """The defaults, updated by the YAML file at ``path`` and then by ``overrides`` (``k=v``)."""
    user = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise TrainingError(f"Config file {path} does not exist.")
        try:
            user = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise TrainingError(f"Config file {path} is not valid YAML ({exc}).") from exc
        if not isinstance(user, dict):
            raise TrainingError(f"Config file {path} must hold a mapping of settings.")
    if user.get("augment", "x") is None:  # `augment: null` switches augmentation off
        user = dict(user)
        user.pop("augment")
        cfg = _merge(DEFAULTS, user)
        cfg["augment"] = None
    else:
        cfg = _merge(DEFAULTS, user)
    for item in overrides or ():
        if "=" not in item:
            raise TrainingError(f"Config override {item!r} must look like key.sub=value.")
        key, text = item.split("=", 1)
        set_value(cfg, key.strip(), text.strip())
    if cfg["split"] is None:
        cfg["split"] = str(Path(cfg["cache"]) / "split.json")
    return cfg


def model_spec(cfg: dict):
    """The ModelSpec this config trains: the named spec with the config's encoder / context."""
    from napari_lungkd.models.specs import get_spec

    spec = get_spec(cfg["model"])
    changes = {"context_slices": int(cfg["context_slices"])}
    if cfg.get("encoder"):
        changes["encoder"] = cfg["encoder"]
    return spec.with_(**changes)
