"""Running under torchrun: process group set-up and the two collective steps the training needs.

DistributedDataParallel averages the model's gradients itself; what it does not cover is done here:
gradients of modules outside the DDP model (the channel-wise distillation adapters) and BatchNorm
statistics, which each rank updates from its own batches (made equal to rank 0's before validation
and at the end, so every rank holds the same model).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def setup_distributed(device_name: str):
    """(rank, world, device) from torchrun's environment; initialises the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return rank, world, device


def broadcast_buffers(model, world: int) -> None:
    """Make BatchNorm statistics equal on every rank (rank 0's), so all ranks hold one model."""
    if world > 1:
        for buf in model.buffers():
            dist.broadcast(buf, src=0)


def all_reduce_grads(module, world: int) -> None:
    """Average gradients of parameters that live outside DDP (the CWD adapters)."""
    if world > 1:
        for p in module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= world
