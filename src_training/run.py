"""One training run's parts, built once: the model, the teacher, losses, optimiser, data, log.

:func:`build_run` makes a :class:`Run` from a config (and restores it from ``last.pt`` for
``--resume``); :func:`save_checkpoint` writes it back. The loop that uses it is in
:mod:`src_training.train`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from napari_lungkd.errors import TrainingError
from napari_lungkd.files import write_json
from src_training import data as D
from src_training.checkpoints import (
    build_trained,
    read_checkpoint,
    read_weights,
    rng_state,
    set_rng_state,
    write_checkpoint,
)
from src_training.config import TrainConfig, model_spec
from src_training.distributed import setup_distributed
from src_training.losses import DistillationLoss, EncoderFeatures, SegmentationLoss
from src_training.prepare import read_split

# ------------------------------------------------------------------ the run ------------------


@dataclass
class RunState:
    """Where the run is; saved in every checkpoint, so ``--resume`` continues from it."""

    epoch: int = 0  # epochs finished
    step_in_epoch: int = 0  # steps of the current epoch done (a mid-epoch checkpoint)
    global_step: int = 0
    best_dice: float = -1.0
    best_epoch: int = -1
    history: list = field(default_factory=list)  # one row of log.csv per finished epoch
    loss_sum: float = 0.0  # training loss summed over the current epoch's steps
    loss_steps: int = 0


@dataclass
class Run:
    """Everything :func:`build_run` makes once; the loop only reads it and advances ``state``."""

    cfg: TrainConfig
    rank: int
    world: int
    device: torch.device
    out: Path
    spec: Any  # the ModelSpec being trained
    data_split: dict  # the patients of each part, stored with the weights
    model: torch.nn.Module
    ddp: torch.nn.Module  # the model, wrapped in DistributedDataParallel under torchrun
    teacher: torch.nn.Module | None  # frozen; None without distillation
    student_features: EncoderFeatures  # forward hooks that catch encoder features for the
    teacher_features: EncoderFeatures | None  # feature-distillation terms; removed by fit()
    seg_loss: SegmentationLoss
    distill: DistillationLoss
    params: list  # what the optimiser updates: the model and the distillation adapters
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    dataset: D.TrainSlices
    steps_per_epoch: int
    val_cases: list
    state: RunState
    writer: Any = None  # a TensorBoard SummaryWriter on rank 0 when asked for
    epochs_run: int = 0  # epochs and steps done by this call of train() (for Stop)
    steps_run: int = 0
    epoch_started: float = 0.0  # time.time() when this call started the current epoch
    channels_last: bool = False  # NHWC tensors for the convolutions (CUDA only)


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total`` steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ------------------------------------------------------------------ build --------------------


def build_run(cfg: TrainConfig, resume: bool = False) -> Run:
    """Model, teacher, losses, optimiser and data of ``cfg`` (restored from last.pt on resume)."""
    rank, world, device = setup_distributed(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.backends.cudnn.benchmark = False
    split = read_split(cfg.split)
    spec = model_spec(cfg)
    if split.get("spacing_mm"):  # the cache was resampled in-plane: the model expects that spacing
        spec = spec.with_(target_spacing_mm=float(split["spacing_mm"]))

    torch.manual_seed(cfg.seed)
    from napari_lungkd.models.specs import build_model

    model = build_model(spec).to(device)
    channels_last = device.type == "cuda"  # NHWC: faster convolutions with tensor cores
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.init and not resume:
        load_init(cfg.init, spec, model)
    teacher = load_teacher(cfg, spec, device)
    if teacher is not None and channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    distill = build_distillation(cfg, model, teacher).to(device)
    params = list(model.parameters()) + list(distill.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    dataset, steps_per_epoch = build_dataset(cfg, split, spec, world)
    total = steps_per_epoch * cfg.optim.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total, cfg.optim.warmup_steps, cfg.optim.min_lr_ratio)
    )
    amp_dtype = None
    if cfg.optim.amp and device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    run = Run(
        cfg=cfg,
        rank=rank,
        world=world,
        device=device,
        out=out,
        spec=spec,
        data_split=data_split_of(cfg, split),
        model=model,
        ddp=torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model,
        teacher=teacher,
        student_features=EncoderFeatures(model),
        teacher_features=EncoderFeatures(teacher) if teacher is not None else None,
        seg_loss=SegmentationLoss(**dataclasses.asdict(cfg.loss)),
        distill=distill,
        params=params,
        opt=opt,
        sched=sched,
        scaler=torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16),
        amp_dtype=amp_dtype,
        dataset=dataset,
        steps_per_epoch=steps_per_epoch,
        val_cases=D.open_cases(cfg.cache, split["cases"]["val"] or split["cases"]["train"]),
        state=RunState(),
        channels_last=channels_last,
    )
    if resume:
        restore_checkpoint(run)
    if rank == 0:
        write_json(out / "config.json", cfg.to_dict())
        run.writer = open_tensorboard(run, purge_step=run.state.global_step if resume else None)
    return run


def load_init(path, spec, model: torch.nn.Module) -> None:
    """Start ``model`` from the weights at ``path`` (fine-tuning); they must be of ``spec``'s
    architecture and preprocessing."""
    from napari_lungkd.models.weights import load_state_into

    weights = read_weights(path)
    if (weights.spec.encoder, weights.spec.preprocessing()) != (
        spec.encoder,
        spec.preprocessing(),
    ):
        raise TrainingError(
            f"Initial weights {path} are a {weights.spec.encoder} model with other preprocessing "
            f"than {spec.name} ({spec.encoder}); start from weights of the same model."
        )
    load_state_into(model, weights.state, weights.path)


def load_teacher(cfg: TrainConfig, spec, device) -> torch.nn.Module | None:
    """The frozen teacher of a distillation run (``cfg.teacher``), or None."""
    if not cfg.teacher:
        return None
    weights = read_weights(cfg.teacher)
    if weights.spec.preprocessing() != spec.preprocessing():
        raise TrainingError(
            f"Teacher {cfg.teacher} was trained with other preprocessing than {spec.name}."
        )
    teacher = build_trained(weights, device)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def build_distillation(cfg: TrainConfig, model, teacher) -> DistillationLoss:
    """The distillation loss of ``cfg.distill`` (not called without a teacher, and then without
    the channel-wise adapters, which would otherwise be trained for nothing)."""
    d = cfg.distill
    return DistillationLoss(
        model.encoder.out_channels,
        (teacher or model).encoder.out_channels,
        stages=d.stages,
        temperature=d.temperature,
        response=d.response,
        attention=d.attention,
        region_affinity=d.region_affinity,
        channel_wise=d.channel_wise if teacher is not None else 0.0,
        cwd_tau=d.cwd_tau,
    )


def build_dataset(cfg: TrainConfig, split: dict, spec, world: int):
    """The training slices and the number of full batches per process and epoch."""
    dc = cfg.data
    augment = dataclasses.asdict(cfg.augment) if cfg.augment is not None else None
    cases = D.open_cases(cfg.cache, split["cases"]["train"])
    dataset = D.TrainSlices(
        cases,
        spec,
        dc.crop_size,
        dc.samples_per_epoch,
        dc.pos_fraction,
        augment,
        cfg.seed,
        dc.hard_fraction,
    )
    steps = math.ceil(len(dataset) / world) // dc.batch_size
    if steps < 1:
        raise TrainingError(
            f"samples_per_epoch={dc.samples_per_epoch} gives no full batch of {dc.batch_size} per process."
        )
    return dataset, steps


def data_split_of(cfg: TrainConfig, split: dict) -> dict:
    """What the weights file records about the data the model saw."""
    keys = ("seed", "patients", "cases", "reference", "level")
    return {"split_file": str(cfg.split), **{k: split.get(k) for k in keys}}


def open_tensorboard(run: Run, purge_step: int | None):
    """A SummaryWriter on ``<out>/tb`` if the config asks for one (the import happens only then)."""
    if not run.cfg.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise TrainingError(
            "The config asks for TensorBoard logs (tensorboard: true) but tensorboard is not "
            "installed; pip install tensorboard, or --set tensorboard=false."
        ) from exc
    return SummaryWriter(str(run.out / "tb"), purge_step=purge_step)


# ------------------------------------------------------------------ checkpoint ---------------


def save_checkpoint(run: Run, name: str, full: bool) -> None:
    """``<out>/<name>`` on rank 0: the model and its spec; ``full`` adds all that --resume needs."""
    from napari_lungkd.models.specs import count_parameters

    if run.rank != 0:
        return
    payload = {
        "model": run.model.state_dict(),
        "spec": run.spec.to_dict(),
        "config": run.cfg.to_dict(),
        "data_split": run.data_split,
        "n_parameters": count_parameters(run.model),
        "state": dataclasses.asdict(run.state),
    }
    if full:
        payload["distill"] = run.distill.state_dict()
        payload["optimizer"] = run.opt.state_dict()
        payload["scheduler"] = run.sched.state_dict()
        payload["scaler"] = run.scaler.state_dict()
        payload["rng"] = rng_state(run.device)
    write_checkpoint(run.out / name, payload)


def restore_checkpoint(run: Run) -> None:
    """Continue from ``<out>/last.pt``: weights, optimiser, schedule, RNG and position."""
    last = run.out / "last.pt"
    if not last.is_file():
        raise TrainingError(f"Nothing to resume: {last} does not exist.")
    ckpt = read_checkpoint(last)
    run.model.load_state_dict(ckpt["model"])
    run.distill.load_state_dict(ckpt["distill"])
    run.opt.load_state_dict(ckpt["optimizer"])
    run.sched.load_state_dict(ckpt["scheduler"])
    run.scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"], run.device)
    run.state = RunState(**ckpt["state"])
