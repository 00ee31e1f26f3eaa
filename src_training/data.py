"""Slice datasets read from the training cache that ``prepare`` wrote.

One training sample is one axial slice (2-D, 1 channel, as in the thesis) or a slice with its
``k`` neighbours as channels (2.5-D), turned into model input by the plugin's own
``napari_lungkd.models.specs.preprocess_slices`` so that training and inference see the same numbers.

Determinism: the list of (case, slice) samples of an epoch and every random choice made for one
sample (crop, flip, rotation, scale, intensity jitter) come from ``numpy.random.default_rng((seed,
epoch, index))``. So the data do not depend on the number of loader workers, on the rank that
draws them, or on whether the run was resumed half-way: resuming at sample ``i`` of epoch ``e``
gives exactly the samples an uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset, Sampler

from napari_lungkd.errors import TrainingError
from napari_lungkd.models.specs import (
    ModelSpec,
    background_value,
    pad_to_multiple,
    preprocess_slices,
)


class CachedCase:
    """One prepared case: HU volume, consensus mask and nodule labels, memory-mapped; optionally an
    ``ignore.npy`` (a host's own lesions: neither nodule nor background, left out of the loss) and
    ``hard_negatives`` in case.json (voxel centres of vessel-like structures and of a model's false
    positives, where hard-negative crops are centred)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        meta_path = self.folder / "case.json"
        if not meta_path.is_file():
            raise TrainingError(
                f"Cache folder {self.folder} has no case.json; run src_training.prepare first."
            )
        self.meta = json.loads(meta_path.read_text())
        self.case_id = self.meta["case_id"]
        self.patient_id = self.meta["patient_id"]
        self.spacing_mm = tuple(float(v) for v in self.meta["spacing_mm"])
        self.positive = np.asarray(self.meta["positive_slices"], dtype=np.int64)
        self.negative = np.asarray(self.meta["negative_slices"], dtype=np.int64)
        hard = self.meta.get("hard_negatives") or []
        self.hard = np.asarray(hard, dtype=np.int64).reshape(-1, 3)

    @property
    def ignore(self) -> np.ndarray | None:
        """uint8 ``(z, y, x)``: 1 where the loss must not look (None: nothing to ignore)."""
        path = self.folder / "ignore.npy"
        return np.load(path, mmap_mode="r") if path.is_file() else None

    @property
    def hu(self) -> np.ndarray:
        return np.load(self.folder / "hu.npy", mmap_mode="r")

    @property
    def mask(self) -> np.ndarray:
        return np.load(self.folder / "mask.npy", mmap_mode="r")

    @property
    def labels(self) -> np.ndarray:
        return np.load(self.folder / "labels.npy", mmap_mode="r")


def open_cases(cache_dir, case_ids) -> list[CachedCase]:
    cases = [CachedCase(Path(cache_dir) / cid) for cid in case_ids]
    if not cases:
        raise TrainingError(f"No cases to read from cache {cache_dir} (is the split empty?).")
    return cases


POSITIVE, RANDOM, HARD = 1, 0, 2
"""What a plan row's third column says: a nodule slice, any other slice, a hard-negative centre."""


def epoch_plan(
    cases: list[CachedCase],
    n_samples: int,
    pos_fraction: float,
    seed: int,
    epoch: int,
    hard_fraction: float = 0.0,
) -> np.ndarray:
    """``(n_samples, 4)`` rows ``(case index, slice index, kind, hard point index)`` for one epoch.

    A fraction ``pos_fraction`` of the samples are slices that contain a nodule (oversampling:
    nodules cover a tiny part of a CT); a fraction ``hard_fraction`` are crops centred on a case's
    hard negatives (vessels seen end-on, a model's false positives); the rest are drawn from the
    slices without a nodule. Without hard negatives the draws are those of earlier versions.
    """
    rng = np.random.default_rng((seed, epoch, 7919))
    pos = [(ci, s) for ci, c in enumerate(cases) for s in c.positive]
    neg = [(ci, s) for ci, c in enumerate(cases) for s in c.negative]
    if not pos and not neg:
        raise TrainingError("The training cases have no slices at all.")
    n_pos = int(round(n_samples * pos_fraction)) if pos else 0
    n_pos = n_samples if not neg else n_pos
    hard = [(ci, k) for ci, c in enumerate(cases) for k in range(len(c.hard))]
    n_hard = min(int(round(n_samples * hard_fraction)), n_samples - n_pos) if hard else 0
    rows = []
    if n_pos:
        pick = rng.integers(0, len(pos), n_pos)
        rows += [(pos[i][0], pos[i][1], POSITIVE, -1) for i in pick]
    n_neg = n_samples - n_pos - n_hard
    if n_neg:
        pick = rng.integers(0, len(neg), n_neg)
        rows += [(neg[i][0], neg[i][1], RANDOM, -1) for i in pick]
    if n_hard:
        pick = rng.integers(0, len(hard), n_hard)
        for i in pick:
            ci, k = hard[i]
            rows.append((ci, int(cases[ci].hard[k, 0]), HARD, k))
    plan = np.asarray(rows, dtype=np.int64)
    return plan[rng.permutation(len(plan))]


def _crop_origin(size: int, crop: int, centre: int | None, rng) -> int:
    if size <= crop:
        return (size - crop) // 2  # negative: the crop is padded around the image
    if centre is None:
        return int(rng.integers(0, size - crop + 1))
    jitter = int(rng.integers(-(crop // 4), crop // 4 + 1))
    return int(np.clip(centre - crop // 2 + jitter, 0, size - crop))


def _take(img: np.ndarray, y0: int, x0: int, crop: int, fill: float) -> np.ndarray:
    """``img[..., y0:y0+crop, x0:x0+crop]`` with ``fill`` where the window leaves the image."""
    out = np.full(img.shape[:-2] + (crop, crop), fill, dtype=img.dtype)
    h, w = img.shape[-2:]
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(h, y0 + crop), min(w, x0 + crop)
    if ye > ys and xe > xs:
        out[..., ys - y0 : ye - y0, xs - x0 : xe - x0] = img[..., ys:ye, xs:xe]
    return out


def augment(x: np.ndarray, y: np.ndarray, rng, cfg: dict, fill: float, w=None):
    """Flip, small rotation and scale, intensity jitter: ``x (C, H, W)`` float32, ``y (H, W)``;
    ``w (H, W)``, the loss weight, moves with ``y`` (returned third when given)."""
    if rng.random() < cfg.get("flip_p", 0.5):
        x, y = x[..., ::-1], y[..., ::-1]
        w = None if w is None else w[..., ::-1]
    if rng.random() < cfg.get("flip_ud_p", 0.0):
        x, y = x[..., ::-1, :], y[::-1, :]
        w = None if w is None else w[::-1, :]
    rot = math.radians(rng.uniform(-1, 1) * cfg.get("rotate_deg", 10.0))
    scale = 1.0 + rng.uniform(-1, 1) * cfg.get("scale", 0.1)
    if rot or scale != 1.0:
        c, s = math.cos(rot) / scale, math.sin(rot) / scale
        mat = np.array([[c, -s], [s, c]])
        centre = (np.array(y.shape) - 1) / 2.0
        offset = centre - mat @ centre
        x = np.stack([ndimage.affine_transform(ch, mat, offset, order=1, cval=fill) for ch in x])
        y = ndimage.affine_transform(y.astype(np.float32), mat, offset, order=0, cval=0.0)
        if w is not None:  # corners rotated in are background (x there is the fill value)
            w = ndimage.affine_transform(w.astype(np.float32), mat, offset, order=0, cval=1.0)
    jitter = cfg.get("intensity", 0.05)
    if jitter:
        x = x * (1.0 + rng.uniform(-jitter, jitter)) + rng.uniform(-jitter, jitter)
    out = np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.float32)
    return out if w is None else (*out, np.ascontiguousarray(w, dtype=np.float32))


class TrainSlices(Dataset):
    """Random crops of (oversampled) slices for one epoch; call :meth:`set_epoch` each epoch."""

    def __init__(
        self,
        cases,
        spec: ModelSpec,
        crop_size: int,
        samples_per_epoch: int,
        pos_fraction: float = 0.5,
        augment_cfg: dict | None = None,
        seed: int = 0,
        hard_fraction: float = 0.0,
    ):
        self.cases, self.spec, self.crop = cases, spec, int(crop_size)
        self.hard_fraction = float(hard_fraction)
        self.n, self.pos_fraction, self.seed = (
            int(samples_per_epoch),
            float(pos_fraction),
            int(seed),
        )
        self.augment_cfg = augment_cfg or None
        self.fill = background_value(spec)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.plan = epoch_plan(
            self.cases, self.n, self.pos_fraction, self.seed, self.epoch, self.hard_fraction
        )

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        """``(x (C, H, W), y (1, H, W), w (1, H, W))``: input, nodule mask, loss weight (0 on a
        host's own lesions, which are neither nodule nor background; 1 elsewhere)."""
        ci, z, kind, k = (int(v) for v in self.plan[i])
        rng = np.random.default_rng((self.seed, self.epoch, int(i)))
        case = self.cases[ci]
        hu, mask, ignore = case.hu, case.mask, case.ignore
        x = preprocess_slices(hu, self.spec, indices=[z])[0]  # (C, H, W)
        y = np.asarray(mask[z], dtype=np.float32)
        w = np.ones_like(y) if ignore is None else 1.0 - np.asarray(ignore[z], dtype=np.float32)
        centre = (None, None)
        if kind == POSITIVE and y.any():
            ys, xs = np.nonzero(y)
            j = int(rng.integers(0, len(ys)))
            centre = (int(ys[j]), int(xs[j]))
        elif kind == HARD:
            centre = (int(case.hard[k, 1]), int(case.hard[k, 2]))
        y0 = _crop_origin(y.shape[0], self.crop, centre[0], rng)
        x0 = _crop_origin(y.shape[1], self.crop, centre[1], rng)
        x = _take(x, y0, x0, self.crop, self.fill)
        y = _take(y, y0, x0, self.crop, 0.0)
        w = _take(w, y0, x0, self.crop, 1.0)
        if self.augment_cfg:
            x, y, w = augment(x, y, rng, self.augment_cfg, self.fill, w)
        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in (x, y[None], w[None]))


def val_slices(case: CachedCase, max_negative: int, seed: int = 0) -> np.ndarray:
    """Validation slices of a case: every nodule slice and up to ``max_negative`` others (fixed)."""
    rng = np.random.default_rng((seed, 104729))
    neg = case.negative
    if len(neg) > max_negative:
        neg = np.sort(rng.choice(neg, max_negative, replace=False))
    return np.sort(np.concatenate([case.positive, neg]).astype(np.int64))


def iter_val_batches(
    cases, spec: ModelSpec, batch_size: int, max_negative: int = 8, rank: int = 0, world: int = 1
):
    """Yield ``(x, y)`` full-slice batches (padded to the spec's size multiple) of this rank's share."""
    items = [(ci, int(z)) for ci, c in enumerate(cases) for z in val_slices(c, max_negative)]
    items = items[rank::world]
    fill = background_value(spec)
    for ci in sorted({ci for ci, _ in items}):
        zs = [z for c, z in items if c == ci]
        case = cases[ci]
        hu, mask = case.hu, case.mask
        for k in range(0, len(zs), batch_size):
            chunk = zs[k : k + batch_size]
            x = preprocess_slices(hu, spec, indices=chunk)
            x, _ = pad_to_multiple(x, spec.size_multiple, fill)
            y, _ = pad_to_multiple(
                np.asarray(mask[chunk], dtype=np.float32)[:, None], spec.size_multiple, 0.0
            )
            yield (
                torch.from_numpy(np.ascontiguousarray(x)),
                torch.from_numpy(np.ascontiguousarray(y)),
            )


class ResumableDistributedSampler(Sampler):
    """Like ``DistributedSampler(shuffle=False)`` (the dataset's plan is already shuffled per epoch),
    plus ``start``: the number of this rank's samples already consumed, skipped on resume."""

    def __init__(self, n: int, rank: int = 0, world: int = 1, start: int = 0):
        self.n, self.rank, self.world, self.start = int(n), int(rank), int(world), int(start)
        self.per_rank = math.ceil(self.n / self.world)

    def __iter__(self):
        idx = list(range(self.n))
        idx += idx[: self.per_rank * self.world - self.n]  # pad so every rank has the same count
        mine = idx[self.rank :: self.world]
        return iter(mine[self.start :])

    def __len__(self) -> int:
        return self.per_rank - self.start


def seed_worker(worker_id: int) -> None:
    """Per-worker seeding of the global RNGs (the samples themselves use their own seeded RNG)."""
    import random

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
