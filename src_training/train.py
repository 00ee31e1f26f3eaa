"""Train the teacher, the baseline student or the distilled student: one script, chosen by config.

    python -m src_training.train src_training/configs/teacher.yaml
    python -m src_training.train src_training/configs/student_kd.yaml --resume
    torchrun --nproc_per_node 4 -m src_training.train src_training/configs/student_kd.yaml

AdamW, linear warm-up then cosine decay (per step), gradient clipping, mixed precision on CUDA,
a checkpoint (``last.pt``) at every epoch end and ``--resume`` that continues bit for bit (model,
optimizer, scheduler, grad scaler, RNG states, position in the epoch), ``best.pt`` by validation
Dice, ``log.csv`` and (``tensorboard: true``) TensorBoard logs. Under torchrun every process trains
on its own share of each epoch's samples (DistributedDataParallel; NCCL on GPU, gloo on CPU).

Read it top to bottom: :func:`train` builds a :class:`Run` (:func:`build_run`), then :func:`fit`
repeats :func:`train_one_epoch` and :func:`end_epoch` (validate, log, checkpoint) until
:class:`Stop` says so.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from napari_lungkd.files import write_json
from src_training import data as D
from src_training import run_main
from src_training.checkpoints import write_csv
from src_training.config import TrainConfig, load_config
from src_training.distributed import all_reduce_grads, broadcast_buffers
from src_training.run import Run, build_run, save_checkpoint


@dataclass(frozen=True)
class Stop:
    """When this call of train() stops: at the run's last epoch, or earlier after ``epochs`` or
    ``steps`` of this call. A stop inside an epoch saves ``last.pt`` with the position in the
    epoch, so ``--resume`` ends with the same weights as an uninterrupted run."""

    run_epochs: int
    epochs: int | None = None
    steps: int | None = None

    def reached(self, run: Run) -> bool:
        return (
            run.state.epoch >= self.run_epochs
            or (self.epochs is not None and run.epochs_run >= self.epochs)
            or (self.steps is not None and run.steps_run >= self.steps)
        )


# ------------------------------------------------------------------ train --------------------


def train(
    cfg: TrainConfig,
    resume: bool = False,
    stop_after_epochs: int | None = None,
    quiet: bool = False,
    stop_after_steps: int | None = None,
) -> dict:
    """Run (or continue) one training run described by ``cfg``; returns the run summary."""
    run = build_run(cfg, resume)
    return fit(run, Stop(cfg.optim.epochs, stop_after_epochs, stop_after_steps), quiet)


def fit(run: Run, stop: Stop, quiet: bool = False) -> dict:
    """Train until ``stop``; the encoder hooks and the log are closed however this ends."""
    try:
        while not stop.reached(run):
            train_one_epoch(run, stop, quiet)
            if run.state.step_in_epoch < run.steps_per_epoch:  # stopped inside the epoch
                save_checkpoint(run, "last.pt", full=True)
                break
            end_epoch(run, quiet)
    finally:
        run.student_features.remove()
        if run.teacher_features is not None:
            run.teacher_features.remove()
        if run.writer is not None:
            run.writer.close()
    return finish(run)


# ------------------------------------------------------------------ one epoch ----------------


def train_one_epoch(run: Run, stop: Stop, quiet: bool = False) -> None:
    """The steps of the current epoch (from its saved position), or until ``stop``."""
    from tqdm import tqdm

    cfg, state = run.cfg, run.state
    run.dataset.set_epoch(state.epoch)
    sampler = D.ResumableDistributedSampler(
        len(run.dataset), run.rank, run.world, start=state.step_in_epoch * cfg.data.batch_size
    )
    loader = DataLoader(
        run.dataset,
        batch_size=cfg.data.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.data.num_workers,
        worker_init_fn=D.seed_worker,
        generator=torch.Generator().manual_seed(cfg.seed * 1000 + state.epoch),
        pin_memory=run.device.type == "cuda",
        persistent_workers=False,
    )
    run.model.train()
    run.epoch_started = time.time()
    bar = tqdm(
        loader,
        total=run.steps_per_epoch - state.step_in_epoch,
        desc=f"{cfg.name} epoch {state.epoch + 1}/{cfg.optim.epochs}",
        disable=quiet or run.rank != 0 or not sys.stderr.isatty(),
        leave=False,
    )
    ckpt_every = cfg.optim.checkpoint_every_steps
    for x, y, w in bar:
        loss = train_step(run, x, y, w)
        bar.set_postfix(loss=f"{loss:.4f}")
        if stop.reached(run):
            break
        mid_epoch = state.step_in_epoch < run.steps_per_epoch
        if ckpt_every and state.global_step % ckpt_every == 0 and mid_epoch:
            save_checkpoint(run, "last.pt", full=True)  # with the position in the epoch


def train_step(run: Run, x, y, w=None) -> float:
    """One optimiser step on the batch ``(x, y)`` with loss weight ``w`` (0 on ignored pixels);
    returns its loss."""
    x, y = x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
    w = None if w is None else w.to(run.device, non_blocking=True)
    if run.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.amp_dtype is not None):
        logits = run.ddp(x)
        terms = {"seg": run.seg_loss(logits, y, w)}
        s_feats = run.student_features.pop()
        if run.teacher is not None:
            with torch.no_grad():
                t_logits = run.teacher(x)
            terms.update(run.distill(logits, t_logits, s_feats, run.teacher_features.pop(), y))
        loss = sum(terms.values())
    run.opt.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    all_reduce_grads(run.distill, run.world)
    run.scaler.unscale_(run.opt)
    if run.cfg.optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.params, run.cfg.optim.grad_clip)
    run.scaler.step(run.opt)
    run.scaler.update()
    run.sched.step()

    state, value = run.state, float(loss.detach())
    state.global_step += 1
    state.step_in_epoch += 1
    state.loss_sum += value
    state.loss_steps += 1
    run.steps_run += 1
    if run.writer is not None:
        run.writer.add_scalar("train/loss", value, state.global_step)
        for k, v in terms.items():
            run.writer.add_scalar(f"train/{k}", float(v.detach()), state.global_step)
        run.writer.add_scalar("train/lr", run.sched.get_last_lr()[0], state.global_step)
    return value


# ------------------------------------------------------------------ validate -----------------


@torch.no_grad()
def validate(model, batches, threshold: float, device, world: int = 1, amp_dtype=None) -> float:
    """Global voxel Dice over the validation ``batches`` (counts pooled over batches and ranks)."""
    from napari_lungkd.scoring.metrics import dice_from_counts

    model.eval()
    counts = torch.zeros(3, dtype=torch.float64, device=device)  # |pred & ref|, |pred|, |ref|
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            pred = torch.sigmoid(model(x).float()) >= threshold
        ref = y != 0
        counts += torch.stack([(pred & ref).sum(), pred.sum(), ref.sum()]).double()
    if world > 1:
        dist.all_reduce(counts)
    return dice_from_counts(*counts.tolist())


def end_epoch(run: Run, quiet: bool = False) -> None:
    """Validate, append the epoch's row to log.csv, save best.pt (if better) and last.pt."""
    cfg, state = run.cfg, run.state
    broadcast_buffers(run.model, run.world)
    batches = D.iter_val_batches(
        run.val_cases,
        run.spec,
        cfg.data.val_batch_size,
        cfg.data.val_max_negative,
        run.rank,
        run.world,
    )
    val_dice = validate(
        run.model, batches, run.spec.threshold, run.device, run.world, run.amp_dtype
    )
    row = {
        "epoch": state.epoch + 1,
        "step": state.global_step,
        "lr": run.sched.get_last_lr()[0],
        "train_loss": state.loss_sum / max(1, state.loss_steps),
        "val_dice": val_dice,
        "seconds": round(time.time() - run.epoch_started, 3),
    }
    state.history.append(row)
    state.epoch, state.step_in_epoch, state.loss_sum, state.loss_steps = state.epoch + 1, 0, 0.0, 0
    if val_dice > state.best_dice:
        state.best_dice, state.best_epoch = val_dice, state.epoch
        save_checkpoint(run, "best.pt", full=False)
    save_checkpoint(run, "last.pt", full=True)
    if run.rank == 0:
        write_csv(run.out / "log.csv", state.history)
        if run.writer is not None:
            run.writer.add_scalar("val/dice", val_dice, state.global_step)
        if not quiet:
            print(
                f"[{cfg.name}] epoch {state.epoch}/{cfg.optim.epochs} loss {row['train_loss']:.4f} "
                f"val Dice {val_dice:.4f} ({row['seconds']:.1f} s)",
                flush=True,
            )
    if run.world > 1:
        dist.barrier()
    run.epochs_run += 1


def finish(run: Run) -> dict:
    """Write the weights hash (per rank) and summary.json; return the summary."""
    from napari_lungkd.models.specs import count_parameters
    from napari_lungkd.models.weights import tensors_sha256

    final_hash = tensors_sha256(run.model.state_dict())
    (run.out / f"state_sha256_rank{run.rank}.txt").write_text(final_hash + "\n")
    summary = {
        "name": run.cfg.name,
        "out": str(run.out),
        "epochs_done": run.state.epoch,
        "best_dice": run.state.best_dice,
        "best_epoch": run.state.best_epoch,
        "state_sha256": final_hash,
        "world_size": run.world,
        "n_parameters": count_parameters(run.model),
        "device": str(run.device),
    }
    if run.rank == 0:
        write_json(run.out / "summary.json", summary)
    if run.world > 1:
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
        help="override a config value, e.g. --set optim.epochs=5 (repeatable; type-checked)",
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
