"""Training configuration: typed sections, read from a YAML file plus ``--set key.sub=value`` overrides.

One config decides the regime: ``teacher: null`` trains without distillation (the teacher itself,
or the baseline student); ``teacher: PATH`` (a ``best.pt`` checkpoint or an exported
``.safetensors``) distils that model into this one. A teacher-assistant chain is two KD runs: the
assistant distils from the teacher, the student from the assistant (configs/assistant_kd.yaml,
configs/student_ta.yaml).

The top level of a file holds the run's own settings (name, model, data cache, output folder,
teacher, device, logging); ``data``, ``augment``, ``optim``, ``loss`` and ``distill`` are sections.
Every value is checked against its field's type when the config is built, so a typo or a wrong
type is one TrainingError sentence before any work starts. ``augment: null`` switches augmentation
off. Relative paths are resolved against the current directory (run from the repo root).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from napari_lungkd.errors import TrainingError


@dataclass(frozen=True)
class DataConfig:
    crop_size: int = 256  # training crops are crop_size x crop_size pixels of one slice
    batch_size: int = 16  # per process
    samples_per_epoch: int = 4000  # slices drawn per epoch (all processes together)
    pos_fraction: float = 0.5  # share of drawn slices that hold a nodule
    num_workers: int = 4
    val_batch_size: int = 16
    val_max_negative: int = 8  # validation: every nodule slice plus this many others per case
    hard_fraction: float = 0.0  # share of crops centred on a case's hard negatives (mix cache)


@dataclass(frozen=True)
class AugmentConfig:
    flip_p: float = 0.5
    flip_ud_p: float = 0.0
    rotate_deg: float = 10.0
    scale: float = 0.1
    intensity: float = 0.05


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 40  # the run's length; the learning-rate schedule ends here
    lr: float = 3.0e-4
    weight_decay: float = 1.0e-4
    warmup_steps: int = 200
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0  # 0: no clipping
    amp: bool = True  # bf16 (or fp16 + loss scaling) on CUDA; ignored on CPU
    checkpoint_every_steps: int = 0  # 0: only at the end of each epoch


@dataclass(frozen=True)
class LossConfig:
    dice: float = 1.0
    bce: float = 1.0


@dataclass(frozen=True)
class DistillConfig:
    temperature: float = 4.0
    response: float = 0.5
    attention: float = 0.0
    region_affinity: float = 0.0
    channel_wise: float = 0.0
    cwd_tau: float = 4.0
    stages: tuple[int, ...] = (3, 4, 5)


@dataclass(frozen=True)
class TrainConfig:
    name: str = "run"
    model: str = "student"  # a napari_lungkd.models.specs spec: student, teacher, assistant34/50
    encoder: str | None = None  # override the spec's encoder (e.g. a smaller teacher for tests)
    context_slices: int = 1  # 1 = 2-D as in the thesis; 3 or 5 = 2.5-D
    seed: int = 0
    cache: str = "data/cache"
    split: str | None = None  # default: <cache>/split.json
    out: str = "runs/run"
    teacher: str | None = None  # null = no distillation; else the teacher's best.pt / .safetensors
    init: str | None = None  # start from these weights (best.pt / .safetensors of the same spec)
    device: str = "auto"
    tensorboard: bool = False  # write <out>/tb (imports tensorboard only when true)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for config.json, checkpoints and the weights file's metadata)."""
        return dataclasses.asdict(self)


# ------------------------------------------------------------------ building and checking ---

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "text"}


def _fields(cls) -> dict[str, Any]:
    """``{name: type}`` of a config dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _section_class(tp) -> type | None:
    """The dataclass of a section field (``AugmentConfig | None`` -> AugmentConfig), else None."""
    for t in typing.get_args(tp) or (tp,):
        if dataclasses.is_dataclass(t):
            return t
    return None


def _options(tp) -> tuple:
    """The types a field accepts: ``str | None`` -> (str, NoneType); ``int`` -> (int,)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _check(key: str, tp, value):
    """``value`` as the field type ``tp``, or TrainingError naming the key, the type and the value."""
    options = _options(tp)
    if value is None and type(None) in options:
        return None
    kind = next(t for t in options if t is not type(None))
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if typing.get_origin(kind) is tuple:  # tuple[int, ...]
        if isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return tuple(value)
        expected = "a list of integers"
    else:
        expected = _TYPE_NAMES[kind]
        if kind is float and (is_int or isinstance(value, float)):
            return float(value)
        if kind is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as text
            try:
                return float(value)
            except ValueError:
                pass
        if (kind is int and is_int) or (kind in (bool, str) and isinstance(value, kind)):
            return value
    if type(None) in options:
        expected += " or null"
    raise TrainingError(f"Config value {key} must be {expected}, not {value!r}.")


def _build(cls, values: dict, where: str = ""):
    """An instance of the section ``cls`` from plain ``values`` (missing keys keep the default)."""
    known = _fields(cls)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise TrainingError(
            f"Config has an unknown key {where}{unknown[0]} "
            f"(known keys{' of ' + where[:-1] if where else ''}: {', '.join(known)})."
        )
    kwargs = {}
    for name, value in values.items():
        key, tp = f"{where}{name}", known[name]
        section = _section_class(tp)
        if section is None:
            kwargs[name] = _check(key, tp, value)
        elif isinstance(value, dict):
            kwargs[name] = _build(section, value, f"{key}.")
        elif value is None and type(None) in _options(tp):
            kwargs[name] = None
        else:
            raise TrainingError(
                f"Config value {key} must be a section of key: value, not {value!r}."
            )
    return cls(**kwargs)


def apply_override(values: dict, item: str) -> None:
    """Apply one ``key.sub=value`` to the plain config ``values`` (its type is checked by _build).

    The value is read as YAML (numbers, true/false, null, lists); a text field keeps the text as
    typed, so ``out=2024`` or ``name=1e3`` stay text.
    """
    if "=" not in item:
        raise TrainingError(f"Config override {item!r} must look like key.sub=value.")
    dotted, text = (s.strip() for s in item.split("=", 1))
    *sections, key = dotted.split(".")
    cls, node = TrainConfig, values
    for name in sections:
        cls = _section_class(_fields(cls).get(name))
        if cls is None:
            raise TrainingError(
                f"Config override {dotted}: {name!r} is an unknown key or not a section."
            )
        if node.get(name) is None:
            raise TrainingError(
                f"Config override {dotted}: the {name} section is off ({name}: null)."
            )
        node = node[name]
    tp = _fields(cls).get(key)
    if tp is None:
        raise TrainingError(
            f"Config override {dotted}: unknown key {key!r} (known: {', '.join(_fields(cls))})."
        )
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    node[key] = text if (str in _options(tp) and value is not None) else value


def _read_yaml(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"Config file {path} does not exist.")
    try:
        user = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TrainingError(f"Config file {path} is not valid YAML ({exc}).") from exc
    if not isinstance(user, dict):
        raise TrainingError(f"Config file {path} must hold a mapping of settings.")
    return user


def _merge(base: dict, over: dict) -> dict:
    """``base`` updated by ``over``, section by section (unknown keys are left for _build)."""
    out = dict(base)
    for key, val in over.items():
        if isinstance(out.get(key), dict) and isinstance(val, dict):
            out[key] = _merge(out[key], val)
        else:
            out[key] = val
    return out


def load_config(path=None, overrides=()) -> TrainConfig:
    """The defaults, updated by the YAML file at ``path`` and then by ``overrides`` (``k=v``)."""
    values = TrainConfig().to_dict()
    if path is not None:
        values = _merge(values, _read_yaml(path))
        _build(TrainConfig, values)  # a file's own mistakes are reported before any override
    for item in overrides or ():
        apply_override(values, item)
    cfg = _build(TrainConfig, values)
    if cfg.split is None:
        cfg = dataclasses.replace(cfg, split=str(Path(cfg.cache) / "split.json"))
    return cfg


def model_spec(cfg: TrainConfig):
    """The ModelSpec this config trains: the named spec with the config's encoder / context."""
    from napari_lungkd.models.specs import get_spec

    changes: dict[str, Any] = {"context_slices": cfg.context_slices}
    if cfg.encoder:
        changes["encoder"] = cfg.encoder
    return get_spec(cfg.model).with_(**changes)
