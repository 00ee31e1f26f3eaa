"""Train the teacher, the baseline student or the distilled student: one script, chosen by config.

    python -m src_training.train src_training/configs/teacher.yaml
    python -m src_training.train src_training/configs/student_kd.yaml --resume
    torchrun --nproc_per_node 4 -m src_training.train src_training/configs/student_kd.yaml

AdamW, linear warm-up then cosine decay (per step), gradient clipping, mixed precision on CUDA,
a checkpoint (``last.pt``) at every epoch end and ``--resume`` that continues bit for bit (model,
optimizer, scheduler, grad scaler, RNG states, position in the epoch), ``best.pt`` by validation
Dice, ``log.csv`` and TensorBoard logs. Under torchrun every process trains on its own share of
each epoch's samples (DistributedDataParallel; NCCL on GPU, gloo on CPU).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from napari_lungkd.errors import TrainingError
from napari_lungkd.files import write_json
from src_training import data as D
from src_training import run_main
from src_training.checkpoints import (
    load_model_file,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_csv,
)
from src_training.config import load_config, model_spec
from src_training.distributed import all_reduce_grads, broadcast_buffers, setup_distributed
from src_training.losses import DistillationLoss, EncoderFeatures, SegmentationLoss
from src_training.prepare import read_split

# ------------------------------------------------------------------ schedule -------------


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total`` steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ------------------------------------------------------------------ validation -----------


@torch.no_grad()
def validate(model, cases, spec, cfg, device, rank, world, amp_dtype) -> float:
    """Global voxel Dice over the validation slices (all ranks share the work)."""
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # intersection, predicted, reference
    batches = D.iter_val_batches(
        cases, spec, cfg["data"]["val_batch_size"], cfg["data"]["val_max_negative"], rank, world
    )
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            prob = torch.sigmoid(model(x).float())
        pred = (prob >= spec.threshold).double()
        sums += torch.stack([(pred * y).sum(), pred.sum(), y.double().sum()])
    if world > 1:
        dist.all_reduce(sums)
    inter, p, g = sums.tolist()
    return 1.0 if p + g == 0 else 2.0 * inter / (p + g)


# ------------------------------------------------------------------ training -------------


def train(
    cfg: dict,
    resume: bool = False,
    stop_after_epochs: int | None = None,
    quiet: bool = False,
    stop_after_steps: int | None = None,
) -> dict:
    """Run (or continue) one training run described by ``cfg``; returns the run summary."""
    from tqdm import tqdm

    from napari_lungkd.models.specs import build_model, count_parameters
    from napari_lungkd.models.weights import tensors_sha256

    rank, world, device = setup_distributed(cfg["device"])
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    torch.backends.cudnn.benchmark = False
    seed = int(cfg["seed"])

    split = read_split(cfg["split"])
    spec = model_spec(cfg)
    if split.get("spacing_mm"):  # the cache was resampled in-plane: the model expects that spacing
        spec = spec.with_(target_spacing_mm=float(split["spacing_mm"]))
    train_cases = D.open_cases(cfg["cache"], split["cases"]["train"])
    val_cases = D.open_cases(cfg["cache"], split["cases"]["val"] or split["cases"]["train"])

    torch.manual_seed(seed)
    model = build_model(spec).to(device)
    student_hook = EncoderFeatures(model)
    teacher = teacher_hook = None
    if cfg["teacher"]:
        teacher, t_spec = load_model_file(cfg["teacher"], device)
        if t_spec.preprocessing() != spec.preprocessing():
            raise TrainingError(
                f"Teacher {cfg['teacher']} was trained with other preprocessing than {spec.name}."
            )
        for p in teacher.parameters():
            p.requires_grad_(False)
        teacher_hook = EncoderFeatures(teacher)
    dcfg = cfg["distill"]
    distill = DistillationLoss(
        model.encoder.out_channels,
        teacher.encoder.out_channels if teacher is not None else model.encoder.out_channels,
        stages=dcfg["stages"],
        temperature=dcfg["temperature"],
        response=dcfg["response"],
        attention=dcfg["attention"],
        region_affinity=dcfg["region_affinity"],
        channel_wise=dcfg["channel_wise"] if teacher is not None else 0.0,
        cwd_tau=dcfg["cwd_tau"],
    ).to(device)
    seg_loss = SegmentationLoss(**cfg["loss"])

    ocfg, dc = cfg["optim"], cfg["data"]
    params = list(model.parameters()) + list(distill.parameters())
    opt = torch.optim.AdamW(params, lr=ocfg["lr"], weight_decay=ocfg["weight_decay"])
    dataset = D.TrainSlices(
        train_cases,
        spec,
        dc["crop_size"],
        dc["samples_per_epoch"],
        dc["pos_fraction"],
        cfg["augment"],
        seed,
    )
    sampler_len = math.ceil(len(dataset) / world)
    steps_per_epoch = sampler_len // dc["batch_size"]
    if steps_per_epoch < 1:
        raise TrainingError(
            f"samples_per_epoch={dc['samples_per_epoch']} gives no full batch of {dc['batch_size']} per process."
        )
    total = steps_per_epoch * ocfg["epochs"]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total, ocfg["warmup_steps"], ocfg["min_lr_ratio"])
    )
    amp_dtype = None
    if ocfg["amp"] and device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    state = {
        "epoch": 0,
        "step_in_epoch": 0,
        "global_step": 0,
        "best_dice": -1.0,
        "best_epoch": -1,
        "history": [],
        "sums": [0.0, 0],
    }
    last = out / "last.pt"
    if resume:
        if not last.is_file():
            raise TrainingError(f"Nothing to resume: {last} does not exist.")
        ckpt = torch.load(last, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        distill.load_state_dict(ckpt["distill"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"], device)
        state = ckpt["state"]
    data_split = {
        "split_file": str(cfg["split"]),
        "seed": split.get("seed"),
        "patients": split["patients"],
        "cases": split["cases"],
        "reference": split.get("reference"),
        "level": split.get("level"),
    }
    if rank == 0:
        write_json(out / "config.json", cfg)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    def checkpoint(path: Path, full: bool) -> None:
        payload = {
            "model": model.state_dict(),
            "spec": spec.to_dict(),
            "config": cfg,
            "data_split": data_split,
            "n_parameters": count_parameters(model),
            "state": state,
        }
        if full:
            payload.update(
                {
                    "distill": distill.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng": rng_state(device),
                }
            )
        save_checkpoint(path, payload)

    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=state["global_step"] if resume else None)
    show = rank == 0 and not quiet and sys.stderr.isatty()
    epochs_run = steps_run = 0
    ckpt_every = int(ocfg["checkpoint_every_steps"] or 0)
    while state["epoch"] < ocfg["epochs"]:
        epoch = state["epoch"]
        dataset.set_epoch(epoch)
        start = state["step_in_epoch"] * dc["batch_size"]
        sampler = D.ResumableDistributedSampler(len(dataset), rank, world, start=start)
        loader = DataLoader(
            dataset,
            batch_size=dc["batch_size"],
            sampler=sampler,
            drop_last=True,
            num_workers=dc["num_workers"],
            worker_init_fn=D.seed_worker,
            generator=torch.Generator().manual_seed(seed * 1000 + epoch),
            pin_memory=device.type == "cuda",
            persistent_workers=False,
        )
        model.train()
        t0 = time.time()
        bar = tqdm(
            loader,
            total=steps_per_epoch - state["step_in_epoch"],
            desc=f"{cfg['name']} epoch {epoch + 1}/{ocfg['epochs']}",
            disable=not show,
            leave=False,
        )
        for x, y in bar:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = ddp(x)
                s_feats = student_hook.pop()
                terms = {"seg": seg_loss(logits, y)}
                if teacher is not None:
                    with torch.no_grad():
                        t_logits = teacher(x)
                    t_feats = teacher_hook.pop()
                    terms.update(distill(logits, t_logits, s_feats, t_feats, y))
                loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            all_reduce_grads(distill, world)
            scaler.unscale_(opt)
            if ocfg["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(params, ocfg["grad_clip"])
            scaler.step(opt)
            scaler.update()
            sched.step()
            state["global_step"] += 1
            state["step_in_epoch"] += 1
            state["sums"] = [state["sums"][0] + float(loss.detach()), state["sums"][1] + 1]
            if writer is not None:
                writer.add_scalar("train/loss", float(loss.detach()), state["global_step"])
                for k, v in terms.items():
                    writer.add_scalar(f"train/{k}", float(v.detach()), state["global_step"])
                writer.add_scalar("train/lr", sched.get_last_lr()[0], state["global_step"])
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            steps_run += 1
            mid_epoch = state["step_in_epoch"] < steps_per_epoch
            stopping = stop_after_steps is not None and steps_run >= stop_after_steps and mid_epoch
            if mid_epoch and (stopping or (ckpt_every and state["global_step"] % ckpt_every == 0)):
                if rank == 0:
                    checkpoint(last, full=True)  # with the position in the epoch, for --resume
            if stopping:
                break
        if (
            stop_after_steps is not None
            and steps_run >= stop_after_steps
            and state["step_in_epoch"] < steps_per_epoch
        ):
            break
        broadcast_buffers(model, world)
        val_dice = validate(model, val_cases, spec, cfg, device, rank, world, amp_dtype)
        row = {
            "epoch": epoch + 1,
            "step": state["global_step"],
            "lr": sched.get_last_lr()[0],
            "train_loss": state["sums"][0] / max(1, state["sums"][1]),
            "val_dice": val_dice,
            "seconds": round(time.time() - t0, 3),
        }
        state["history"].append(row)
        state.update(epoch=epoch + 1, step_in_epoch=0, sums=[0.0, 0])
        is_best = val_dice > state["best_dice"]
        if is_best:
            state.update(best_dice=val_dice, best_epoch=epoch + 1)
        if rank == 0:
            writer.add_scalar("val/dice", val_dice, state["global_step"])
            write_csv(out / "log.csv", state["history"])
            if is_best:
                checkpoint(out / "best.pt", full=False)
            checkpoint(last, full=True)
            if not quiet:
                print(
                    f"[{cfg['name']}] epoch {epoch + 1}/{ocfg['epochs']} loss {row['train_loss']:.4f} "
                    f"val Dice {val_dice:.4f} ({row['seconds']:.1f} s)",
                    flush=True,
                )
        if world > 1:
            dist.barrier()
        epochs_run += 1
        if (stop_after_epochs is not None and epochs_run >= stop_after_epochs) or (
            stop_after_steps is not None and steps_run >= stop_after_steps
        ):
            break
    if writer is not None:
        writer.close()
    final_hash = tensors_sha256(model.state_dict())
    (out / f"state_sha256_rank{rank}.txt").write_text(final_hash + "\n")
    summary = {
        "name": cfg["name"],
        "out": str(out),
        "epochs_done": state["epoch"],
        "best_dice": state["best_dice"],
        "best_epoch": state["best_epoch"],
        "state_sha256": final_hash,
        "world_size": world,
        "n_parameters": count_parameters(model),
        "device": str(device),
    }
    if rank == 0:
        write_json(out / "summary.json", summary)
    student_hook.remove()
    if world > 1:
        dist.barrier()
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m src_training.train", description=__doc__.splitlines()[0]
    )
    ap.add_argument("config", help="YAML config (src_training/configs/*.yaml)")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.epochs=5 (repeatable)",
    )
    ap.add_argument(
        "--stop-after-epochs",
        type=int,
        default=None,
        help="stop after this many epochs in this run",
    )
    ap.add_argument(
        "--stop-after-steps",
        type=int,
        default=None,
        help="stop after this many steps in this run (saving last.pt with the position, for --resume)",
    )
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(
        max(1, int(os.environ.get("LUNGKD_TRAIN_THREADS", torch.get_num_threads())))
    )
    cfg = load_config(args.config, args.overrides)
    try:
        train(
            cfg,
            resume=args.resume,
            stop_after_epochs=args.stop_after_epochs,
            quiet=args.quiet,
            stop_after_steps=args.stop_after_steps,
        )
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    run_main(main)
