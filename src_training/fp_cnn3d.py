"""Train the 3-D CNN false-positive classifiers: a teacher, a student plain and distilled.

Reads the candidate tables of :mod:`src_training.fp_data` (their ``patches``: 32³ HU at 1 mm
around each U-Net candidate; label 1 = on a reference nodule, 0 = false positive, -1 = left out)
and splits them **by patient** (:func:`split`): phantoms 5000-5011 and the trainable real chests
other than :data:`HELD_OUT_PATIENTS` (with their copies carrying inserted nodules) train; phantoms
5012-5023 and the held-out real chests (with their copies) are scored. The CC BY-NC chests never
train. Then, all seeded:

1. the teacher (:func:`napari_lungkd.models.cnn3d.build_teacher`) with class-balanced BCE;
2. the baseline student with the same loss and schedule;
3. the distilled student: BCE + ``KD_WEIGHT`` x the response term of :mod:`src_training.losses`
   (Bernoulli KL to the teacher's output at temperature ``T``, times T²). The teacher's logits are
   computed once per training patch (unaugmented) and serve as the soft target of every
   augmented view of it (the augmentations are symmetries the teacher was trained to ignore).

Class balancing: each batch holds as many nodules as false positives (nodules drawn with
replacement), which gives the classes equal weight in the BCE. Every long step is a generator of
:class:`~napari_lungkd.progress.Progress`.

    python -m src_training.fp_cnn3d --cache data/fp_cache_new --out data/fp_cnn3d
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_lungkd.progress import Progress, run_with_tqdm
from src_training.fp_classifier import default_operating_point
from src_training.fp_cnn3d_scores import metrics
from src_training.fp_data import PHANTOM_SEED_BASE, CaseTable, load_tables

HELD_OUT_PATIENTS = ("LIDC-IDRI-0001", "C3N-00247", "LUNG1-001", "IBSI_ct_phantom")
"""Real patients the 3-D classifiers never train on (the U-Net never saw them either)."""
FOLDS = {
    "A": HELD_OUT_PATIENTS,
    "B": ("pyradiomics_lung2", "Lung_Dx-A0001", "elastix"),
}
"""``--fold``: which real patients are held out. A (the default, the shipped files): the chests no
U-Net trained on; B: the four hosts of the U-Net's training mix, so that every trainable real
patient is scored once by a classifier that never saw it (A and B together)."""
TRAIN_PHANTOMS = range(PHANTOM_SEED_BASE, PHANTOM_SEED_BASE + 12)  # 5000-5011; 5012-5023 scored
TEMPERATURE = 4.0
KD_WEIGHT = 1.0


@dataclass(frozen=True)
class Schedule:
    steps: int
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4


SCHEDULES = {"teacher": Schedule(steps=200, lr=1e-3), "student": Schedule(steps=200)}


def split(tables: list[CaseTable], held_out=HELD_OUT_PATIENTS):
    """``(train, test)`` tables by patient (module doc); a case that fits neither is left out."""
    train, test = [], []
    for t in tables:
        if t.kind == "phantom":
            seed = int(t.name.rsplit("-", 1)[1])
            (train if seed in TRAIN_PHANTOMS else test).append(t)
        elif t.patient in held_out:
            test.append(t)
        elif t.trainable:
            train.append(t)
    assert not {t.patient for t in train} & {t.patient for t in test}, "a patient on both sides"
    assert all(t.trainable for t in train), "a non-trainable scan in the training set"
    return train, test


@dataclass
class PatchSet:
    """The labelled patches of some tables (``y`` 0/1; rows with ``y == -1`` dropped)."""

    patches: np.ndarray  # (n, 32, 32, 32) int16
    y: np.ndarray  # (n,) int
    names: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, tables: list[CaseTable]) -> PatchSet:
        ps, ys = [], []
        for t in tables:
            if t.patches is None:
                raise ValueError(f"{t.name} has no patches: rebuild its table with fp_data")
            keep = t.y >= 0
            ps.append(t.patches[keep])
            ys.append(t.y[keep])
        if not ps:
            return cls(np.zeros((0, 32, 32, 32), np.int16), np.zeros(0, int))
        return cls(np.concatenate(ps), np.concatenate(ys), [t.name for t in tables])


def _batches(y: np.ndarray, batch: int, rng: np.random.Generator):
    """Endless class-balanced index batches: half nodules, half false positives."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if not len(pos) or not len(neg):
        raise ValueError("training needs both nodules and false positives")
    half = batch // 2
    while True:
        yield np.r_[rng.choice(pos, half), rng.choice(neg, batch - half, replace=len(neg) < batch)]


def iter_train(
    arch: str,
    data: PatchSet,
    seed: int = 0,
    schedule: Schedule | None = None,
    teacher_logits: np.ndarray | None = None,
    temperature: float = TEMPERATURE,
    kd_weight: float = KD_WEIGHT,
    device: str = "cpu",
):
    """Train one network; yields Progress, returns it (eval mode). With ``teacher_logits`` (one
    per row of ``data``) the loss adds the response-distillation term."""
    import torch
    import torch.nn.functional as F

    from napari_lungkd.models.cnn3d import augment, build
    from src_training.losses import response_kd

    sched = schedule or SCHEDULES["teacher" if arch == "teacher" else "student"]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build(arch).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=sched.lr, weight_decay=sched.weight_decay)
    lr_at = torch.optim.lr_scheduler.OneCycleLR(opt, sched.lr, total_steps=sched.steps)
    stage = f"{arch}{' distilled' if teacher_logits is not None else ''} (seed {seed})"
    batches = _batches(data.y, sched.batch, rng)
    for step in range(sched.steps):
        idx = next(batches)
        x = augment(torch.from_numpy(data.patches[idx]).unsqueeze(1), gen).to(device)
        target = torch.from_numpy(data.y[idx].astype(np.float32)).to(device)
        logits = model(x)
        loss = F.binary_cross_entropy_with_logits(logits, target)
        if teacher_logits is not None:
            t = torch.from_numpy(np.asarray(teacher_logits[idx], dtype=np.float32)).to(device)
            loss = loss + kd_weight * response_kd(logits, t, temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr_at.step()
        if (step + 1) % 25 == 0 or step + 1 == sched.steps:
            yield Progress(step + 1, sched.steps, stage, f"loss {loss.item():.3f}")
        else:
            yield Progress(step + 1, sched.steps, stage)
    return model.eval()


def iter_predict(model, patches: np.ndarray, batch: int = 64, stage: str = "scoring"):
    """Logits of ``patches`` in eval mode; yields Progress, returns ``(n,)`` float32."""
    from napari_lungkd.models.cnn3d import predict_logits

    out = []
    n = len(patches)
    for i in range(0, n, batch):
        out.append(predict_logits(model, patches[i : i + batch], batch))
        yield Progress(min(i + batch, n), n, stage)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def iter_score_tables(model, tables: list[CaseTable], stage: str = "scoring"):
    """Nodule probability of every candidate of each table (a list of arrays)."""
    sizes = [len(t.y) for t in tables]
    if not sum(sizes):
        return [np.zeros(0) for _ in tables]
    allp = np.concatenate([t.patches for t in tables if len(t.y)])
    logits = yield from iter_predict(model, allp, stage=stage)
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return np.split(probs, np.cumsum(sizes)[:-1])


def _meta(arch, role, seed, train, test, held, schedule: Schedule, extra=None) -> dict:
    return {
        "role": role,
        "training": {
            "seed": seed,
            "schedule": dict(schedule.__dict__),
            "loss": "class-balanced BCE"
            + (f" + {KD_WEIGHT} x response KD (T={TEMPERATURE})" if role == "distilled" else ""),
            "augmentation": "flips z/y/x, 90 degree turns in y-x",
            "unet": "student (bundled)",
            **(extra or {}),
        },
        "data_split": {
            "train_cases": [t.name for t in train],
            "held_out_cases": [t.name for t in test],
            "held_out_patients": sorted({t.patient for t in test}),
        },
        "metrics": {"held_out": held},
    }


def iter_run(
    tables: list[CaseTable],
    out: Path,
    seeds=(0,),
    log=print,
    device: str = "cpu",
    schedules: dict | None = None,
    held_out=HELD_OUT_PATIENTS,
    teacher_file: Path | None = None,
    roles=("baseline", "distilled"),
):
    """Teacher (seed ``seeds[0]``; or the one in ``teacher_file``, which must not have trained on
    a held-out patient), then the student ``roles`` per seed; each is scored on the held-out
    tables and saved under ``out`` with the operating points measured there. Returns the report."""
    import torch

    from napari_lungkd.models.cnn3d import n_parameters, save_cnn3d

    schedules = {**SCHEDULES, **(schedules or {})}
    train, test = split(tables, held_out)
    data = PatchSet.of(train)
    log(
        f"train: {len(train)} scans, {int((data.y == 1).sum())} nodule / "
        f"{int((data.y == 0).sum())} false-positive patches; held out: {len(test)} scans"
    )
    report = {"train_cases": [t.name for t in train], "held_out_cases": [t.name for t in test]}
    report["torch_threads"] = torch.get_num_threads()
    runs = []

    def finish(model, arch, role, seed, seconds, extra=None):
        scores = yield from iter_score_tables(model, test, f"scoring {role} (seed {seed})")
        held = metrics(test, scores)
        path = out / f"{role}_s{seed}.safetensors"
        meta = _meta(arch, role, seed, train, test, held, schedules[arch], extra)
        meta.update(default_operating_point(test, scores))
        save_cnn3d(path, model, arch, meta)
        runs.append(
            {
                "role": role,
                "arch": arch,
                "seed": seed,
                "params": n_parameters(model),
                "train_s": round(seconds, 1),
                "held_out": held,
                "path": str(path),
                "scores": scores,
            }
        )
        log(f"{role} seed {seed}: {_short(held)} ({seconds:.0f} s)")

    if teacher_file is None:
        t0 = time.perf_counter()
        teacher = yield from iter_train(
            "teacher", data, seeds[0], schedules["teacher"], device=device
        )
        yield from finish(teacher, "teacher", "teacher", seeds[0], time.perf_counter() - t0)
        teacher_name = f"teacher_s{seeds[0]}.safetensors"
    else:
        from napari_lungkd.models.cnn3d import load_cnn3d

        teacher, header = load_cnn3d(teacher_file)
        seen = {t.patient for t in test} & set(header["data_split"]["held_out_patients"])
        if seen != {t.patient for t in test}:
            raise ValueError(f"{teacher_file} trained on held-out patients of this run")
        teacher, teacher_name = teacher.to(device), str(teacher_file)
        report["teacher_file"] = teacher_name
    soft = None
    if "distilled" in roles:
        soft = yield from iter_predict(teacher, data.patches, stage="teacher on training patches")
    for seed in seeds:
        for role, tl in (("baseline", None), ("distilled", soft)):
            if role not in roles:
                continue
            t0 = time.perf_counter()
            student = yield from iter_train(
                "student", data, seed, schedules["student"], teacher_logits=tl, device=device
            )
            extra = {"teacher": teacher_name} if tl is not None else None
            yield from finish(student, "student", role, seed, time.perf_counter() - t0, extra)
    report["runs"] = runs
    return report


def _short(held: dict) -> str:
    def f(v):
        return "-" if v is None else f"{v:.3f}"

    return "; ".join(f"{g}: AUC {f(m['auc'])}, CPM {f(m['cpm'])}" for g, m in held.items())


def main(argv=None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path("data/fp_cache_new"))
    ap.add_argument("--model", default="student", help="the U-Net whose candidates are used")
    ap.add_argument("--out", type=Path, default=Path("data/fp_cnn3d"))
    ap.add_argument("--seeds", default="0", help="student seeds, e.g. 0,1,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--fold", choices=sorted(FOLDS), default="A", help="held-out patients")
    ap.add_argument("--steps", default="", help="steps per network, e.g. teacher=2000,student=3000")
    ap.add_argument("--batch", type=int, default=None, help="patches per step (default 32)")
    ap.add_argument(
        "--teacher",
        type=Path,
        default=None,
        help="distil from this 3-D teacher file, not a new one",
    )
    ap.add_argument(
        "--roles", default="baseline,distilled", help="which students to train per seed"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    tables = load_tables(args.cache, args.model)
    if not tables:
        raise SystemExit(f"no candidate tables in {args.cache / args.model}: run fp_data first")
    seeds = tuple(int(s) for s in args.seeds.split(","))
    schedules = {}
    for item in filter(None, args.steps.split(",")):
        arch, _, n = item.partition("=")
        base = SCHEDULES[arch]
        schedules[arch] = Schedule(int(n), args.batch or base.batch, base.lr, base.weight_decay)
    for arch, base in SCHEDULES.items():
        if args.batch and arch not in schedules:
            schedules[arch] = Schedule(base.steps, args.batch, base.lr, base.weight_decay)
    report = run_with_tqdm(
        iter_run(
            tables,
            args.out,
            seeds,
            log=lambda s: print(s, flush=True),
            device=args.device,
            schedules=schedules,
            held_out=FOLDS[args.fold],
            teacher_file=args.teacher,
            roles=tuple(args.roles.split(",")),
        )
    )
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in report.items() if k != "runs"}
    summary["fold"] = args.fold
    summary["runs"] = [{k: v for k, v in r.items() if k != "scores"} for r in report["runs"]]
    (args.out / "report.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
