"""One shot on a bare GPU machine: the mix, the teacher, three baseline and three distilled students.

    python -m src_training.oneshot --out runs/oneshot [--hosts-pack data/hosts_pack.npz]
        [--budget-min 8] [--into $OUT] [--tiny] [--set KEY=VALUE ...]
    python -m src_training.oneshot --out runs/oneshot --batch 1 --into $OUT     # the next batch
    python -m src_training.oneshot --join FOLDER --into weights/                  # parts -> files

In order, with one time budget for all of it (``--budget-min``):

1. **the mix** (:mod:`src_training.mix`) in ``<work>/mix``: varied phantoms, built in parallel on
   every core, and nodules inserted into the real hosts of ``--hosts-pack`` (their own lesions
   ignored by the loss), hard negatives, the patient split;
2. **training** (:func:`src_training.train.train`, configs ``teacher.yaml``, ``student_baseline.yaml``,
   ``student_kd.yaml``): the teacher, the baseline student seeds 0, 1, 2, the distilled student
   seeds 0, 1, 2 (response KD from the teacher just trained). Each model gets a share of the time
   left (:data:`SHARES`); its steps are that share over its step time, measured first on a few
   steps of the same code (:func:`probe_step_seconds`) and corrected by what the previous model of
   its kind really took. bf16 autocast and channels-last on CUDA (``src_training.run``);
3. **export** (:func:`src_training.export.export`) of every ``best.pt``, then each file split into
   parts of at most 16 MiB (:mod:`napari_lungkd.models.weights_parts`) in ``--out``, with
   ``logs.tar.gz`` (configs, log.csv, summaries, the split) and ``oneshot.json`` last: the manifest
   (SHA-256 of every file and part), the plan, the timings, and the *batches*: a GPU machine hands
   back at most 8 files and 64 MiB per call, so ``--into $OUT`` copies batch 0 and ``--batch K
   --into $OUT`` the others (while the machine is still warm).

``--tiny`` runs the whole path on a CPU in minutes (phantoms of 96 pixels, two cases, one host,
the tiny_*.yaml encoders, a handful of steps): the test of this script. Nothing half-written is
left in ``--out`` (every file is written atomically; ``oneshot.json`` only once all are there).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from napari_lungkd.errors import TrainingError
from napari_lungkd.files import write_json
from napari_lungkd.progress import Progress, run_with_tqdm
from src_training import run_main

CONFIGS = Path(__file__).resolve().parent / "configs"
SHARES = {"teacher": 2.0, "baseline": 1.0, "distilled": 1.0}
"""Relative training time per model (the teacher is ~3x slower per step and is trained once)."""
SEEDS = (0, 1, 2)
MIX_DATA = {"data.hard_fraction": 0.0, "data.pos_fraction": 0.5}
"""The mix recipe chosen by issue 14's comparison (README, "Training data that teaches real CT"): no
crops centred on hard negatives (30 % of them lost the LIDC-IDRI-0001 nodule), half nodule crops."""
EPOCHS_MAX, EPOCH_STEPS_MIN = 4, 50
"""A run is split into at most this many epochs (validation, best.pt) of at least this many steps."""
OVERHEAD = 1.3
"""First guess of wall time / (steps x probed step time): data loading, validation, checkpoints."""
EXPORT_S = {"gpu": 8.0, "tiny": 0.0}
"""Seconds kept back per model for its export."""


@dataclass(frozen=True)
class Plan:
    out: Path
    work: Path
    hosts_pack: Path | None = None
    budget_s: float = 8 * 60.0
    tiny: bool = False
    phantoms: tuple[int, ...] = tuple(range(32))
    size: int = 512
    inserted: int = 3
    workers: int = os.cpu_count() or 1
    precision: str = "fp16"
    teacher_precision: str = "int8"
    overrides: tuple[str, ...] = ()
    steps_min: int = 20
    steps_max: int = 100_000
    probe_steps: tuple[int, int] = (2, 3)  # warm-up and timed steps of the step-time probe
    kinds: tuple[str, ...] = ("teacher", "baseline", "distilled")  # --only: an ablation call
    seeds: tuple[int, ...] = SEEDS


def tiny_plan(out, work, hosts_pack=None, **changes) -> Plan:
    """The CPU test configuration: two phantoms of 96 pixels, one host, 2-4 steps per model."""
    base = dict(phantoms=(0, 1), size=96, inserted=1, workers=2, steps_min=1, steps_max=2)
    base["probe_steps"] = (1, 1)
    return Plan(Path(out), Path(work), hosts_pack, tiny=True, **{**base, **changes})


@dataclass(frozen=True)
class Job:
    name: str  # teacher, baseline_s0, distilled_s2 ...
    kind: str  # teacher, baseline, distilled
    config: Path
    seed: int


def jobs(tiny: bool, kinds=("teacher", "baseline", "distilled"), seeds=SEEDS) -> list[Job]:
    """The runs, in order: the teacher, then each student kind seed by seed (``kinds`` filters:
    a distilled student needs the teacher of the same call)."""
    if "distilled" in kinds and "teacher" not in kinds:
        raise TrainingError("A distilled student needs the teacher: --only teacher,distilled.")
    prefix = "tiny_" if tiny else ""
    out = [Job("teacher", "teacher", CONFIGS / f"{prefix}teacher.yaml", 0)]
    for kind, cfg in (("baseline", "student_baseline"), ("distilled", "student_kd")):
        out += [Job(f"{kind}_s{s}", kind, CONFIGS / f"{prefix}{cfg}.yaml", s) for s in seeds]
    return [j for j in out if j.kind in kinds]


def job_config(plan: Plan, job: Job, steps: int | None = None, out: Path | None = None):
    """The TrainConfig of ``job``: its YAML, the mix cache, the seed, the recipe's data shares,
    response KD as in student_kd.yaml, ``plan.overrides``; ``steps`` sets epochs and samples."""
    from src_training.config import load_config

    sets = [
        f"cache={plan.work / 'mix'}",
        f"out={out or plan.work / 'runs' / job.name}",
        f"seed={job.seed}",
        "tensorboard=false",
        *(f"{k}={v}" for k, v in MIX_DATA.items()),
    ]
    if not plan.tiny:
        sets.append(f"data.num_workers={max(2, min(12, (os.cpu_count() or 4) - 2))}")
    if job.kind == "distilled":
        kd = load_config(CONFIGS / "student_kd.yaml").distill
        sets.append(f"teacher={plan.work / 'runs' / 'teacher' / 'best.pt'}")
        sets += [f"distill.{k}={v}" for k, v in dataclasses.asdict(kd).items() if k != "stages"]
    cfg = load_config(job.config, [*sets, *plan.overrides])
    if steps is not None:
        epochs = max(1, min(EPOCHS_MAX, steps // EPOCH_STEPS_MIN))
        per_epoch = max(1, steps // epochs)
        data = dataclasses.replace(cfg.data, samples_per_epoch=per_epoch * cfg.data.batch_size)
        warmup = min(cfg.optim.warmup_steps, max(1, steps // 10))
        optim = dataclasses.replace(cfg.optim, epochs=epochs, warmup_steps=warmup)
        cfg = dataclasses.replace(cfg, data=data, optim=optim)
    return cfg


# ------------------------------------------------------------------ the mix ---------------


def _host_job(cache: str, name: str, n_inserted: int, pack: str) -> int:
    """In a worker process: the inserted cases of one packed host."""
    from src_training.hosts_pack import load_pack
    from src_training.mix import host_cases
    from src_training.real_chests import CHESTS

    host = next(h for h in load_pack(pack) if h.name == name)
    chest = next(c for c in CHESTS if c.name == name)
    return len(list(host_cases(Path(cache), chest, n_inserted, None, (host.ct, host.ignore))))


def iter_build_mix(plan: Plan, hosts: list[str]):
    """Generator: every case in a process pool (phantoms and hosts in parallel), then the split
    (:func:`src_training.mix.iter_mix`, which keeps the cases already built)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from src_training import mix

    cache = plan.work / "mix"
    cache.mkdir(parents=True, exist_ok=True)
    tasks = [(mix.phantom_case, (cache, s, False, plan.size)) for s in plan.phantoms]
    tasks += [(_host_job, (str(cache), h, plan.inserted, str(plan.hosts_pack))) for h in hosts]
    workers = max(1, min(plan.workers, len(tasks)))
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(fn, *args) for fn, args in tasks]
        for done, fut in enumerate(as_completed(futures)):
            fut.result()
            yield Progress(done + 1, len(tasks), "mix")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    gen = mix.iter_mix(
        cache,
        plan.phantoms,
        size=plan.size,
        hosts=hosts,
        n_inserted=plan.inserted,
        hosts_pack=plan.hosts_pack,
    )
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


# ------------------------------------------------------------------ timing ----------------


def probe_step_seconds(cfg, n_warm: int = 2, n_timed: int = 3) -> float:
    """Seconds per optimiser step of ``cfg``'s run, measured on random batches through the
    training code itself (:func:`src_training.train.train_step`; a throwaway run)."""
    import torch

    from src_training.run import build_run
    from src_training.train import train_step

    run = build_run(cfg)
    try:
        b, c, n = cfg.data.batch_size, run.spec.in_channels, cfg.data.crop_size
        g = torch.Generator().manual_seed(0)
        x = torch.randn(b, c, n, n, generator=g)
        y = (torch.rand(b, 1, n, n, generator=g) > 0.95).float()
        w = torch.ones_like(y)
        for i in range(n_warm + n_timed):
            if i == n_warm:
                if run.device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            train_step(run, x, y, w)
        if run.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / n_timed
    finally:
        run.student_features.remove()
        if run.teacher_features is not None:
            run.teacher_features.remove()
        shutil.rmtree(run.out, ignore_errors=True)
        del run
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def steps_for(seconds: float, step_s: float, overhead: float, plan: Plan) -> int:
    return int(max(plan.steps_min, min(plan.steps_max, seconds / max(step_s * overhead, 1e-6))))


# ------------------------------------------------------------------ the whole run ---------


def iter_oneshot(plan: Plan):
    """Generator of Progress: mix, train, export, parts; returns the oneshot.json document."""
    from src_training.oneshot_out import write_outputs

    t0 = time.monotonic()
    out = Path(plan.out)
    if out.exists() and any(out.iterdir()):
        raise TrainingError(f"Output folder {out} is not empty; give an empty or new one.")
    out.mkdir(parents=True, exist_ok=True)
    hosts: list[str] = []
    if plan.hosts_pack:
        from src_training.hosts_pack import load_pack

        hosts = [h.name for h in load_pack(plan.hosts_pack)][: 1 if plan.tiny else None]
    split = yield from iter_build_mix(plan, hosts)
    mix_s = time.monotonic() - t0

    from src_training.train import train

    todo = jobs(plan.tiny, plan.kinds, plan.seeds)
    export_s = EXPORT_S["tiny" if plan.tiny else "gpu"] * len(todo)
    train_end = t0 + plan.budget_s - export_s
    probes: dict[str, float] = {}
    overhead: dict[str, float] = {}
    records = []
    for i, job in enumerate(todo):
        yield Progress(i, len(todo), "train", job.name)
        left = sum(SHARES[j.kind] for j in todo[i:])
        share = max(0.0, train_end - time.monotonic()) * SHARES[job.kind] / left
        started = time.monotonic()
        if job.kind not in probes:
            probe_cfg = job_config(plan, job, plan.steps_min, plan.work / "probe" / job.name)
            probes[job.kind] = probe_step_seconds(probe_cfg, *plan.probe_steps)
        factor = overhead.get(job.kind, max(overhead.values(), default=OVERHEAD))
        spent = time.monotonic() - started
        steps = steps_for(share - spent, probes[job.kind], factor, plan)
        cfg = job_config(plan, job, steps)
        summary = train(cfg, quiet=plan.tiny)
        wall = time.monotonic() - started - spent
        done_steps = cfg.optim.epochs * (cfg.data.samples_per_epoch // cfg.data.batch_size)
        overhead[job.kind] = wall / max(1e-6, done_steps * probes[job.kind])
        records.append(
            {
                "name": job.name,
                "kind": job.kind,
                "seed": job.seed,
                "config": str(job.config.name),
                "share_s": round(share, 1),
                "probe_step_s": round(probes[job.kind], 4),
                "steps": done_steps,
                "epochs": cfg.optim.epochs,
                "train_s": round(wall, 1),
                "best_dice": summary["best_dice"],
                "device": summary["device"],
                "n_parameters": summary["n_parameters"],
            }
        )
        write_json(plan.work / "runs" / "oneshot_progress.json", records)
    yield Progress(len(todo), len(todo), "train")
    doc = yield from write_outputs(plan, todo, records, split, {"mix_s": round(mix_s, 1), "t0": t0})
    return doc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m src_training.oneshot", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--out", help="folder for the weights' parts, logs.tar.gz and oneshot.json")
    ap.add_argument("--work", default=None, help="mix cache and runs (default: <out>_work)")
    ap.add_argument("--hosts-pack", type=Path, default=None, help="real hosts (hosts_pack.py)")
    ap.add_argument("--budget-min", type=float, default=8.0, help="minutes for all of it")
    ap.add_argument("--phantoms", default="0-31", help="phantom seeds, e.g. 0-31")
    ap.add_argument("--inserted", type=int, default=3, help="inserted cases per host")
    ap.add_argument("--precision", default="fp16", choices=("fp32", "fp16", "int8"))
    ap.add_argument("--teacher-precision", default="int8", choices=("fp32", "fp16", "int8"))
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for every model (repeatable)",
    )
    ap.add_argument("--tiny", action="store_true", help="the CPU test configuration")
    ap.add_argument(
        "--only",
        default="teacher,baseline,distilled",
        help="the kinds to train, e.g. baseline (an ablation call; distilled needs teacher)",
    )
    ap.add_argument("--seeds", default="0,1,2", help="student seeds, e.g. 0 or 0,1,2")
    ap.add_argument("--into", default=None, help="copy batch --batch (default 0) here ($OUT)")
    ap.add_argument("--batch", type=int, default=None, help="only copy this batch of --out")
    ap.add_argument("--join", default=None, help="join the parts in this folder into --into")
    args = ap.parse_args(argv)
    from src_training.mix import _seeds
    from src_training.oneshot_out import copy_batch, join_folder

    if args.join:
        if not args.into:
            raise TrainingError("--join needs --into, the folder for the joined weights files.")
        for path in join_folder(args.join, args.into):
            print(f"{path}: verified")
        return 0
    if not args.out:
        raise TrainingError("Give --out, the output folder.")
    if args.batch is not None:
        if not args.into:
            raise TrainingError("--batch needs --into, the folder to copy the batch to ($OUT).")
        print(copy_batch(args.out, args.batch, args.into))
        return 0
    work = Path(args.work) if args.work else Path(f"{str(args.out).rstrip('/')}_work")
    common = dict(precision=args.precision, teacher_precision=args.teacher_precision)
    common["overrides"] = tuple(args.overrides)
    common["kinds"] = tuple(k.strip() for k in args.only.split(",") if k.strip())
    common["seeds"] = tuple(int(x) for x in args.seeds.split(",") if x.strip())
    unknown = set(common["kinds"]) - set(SHARES)
    if unknown:
        raise TrainingError(f"--only: unknown kind(s) {sorted(unknown)}; use {sorted(SHARES)}.")
    if args.tiny:
        plan = tiny_plan(args.out, work, args.hosts_pack, budget_s=args.budget_min * 60, **common)
    else:
        plan = Plan(
            Path(args.out),
            work,
            args.hosts_pack,
            args.budget_min * 60,
            phantoms=tuple(_seeds(args.phantoms)),
            inserted=args.inserted,
            **common,
        )
    import torch

    threads = int(os.environ.get("LUNGKD_TRAIN_THREADS", torch.get_num_threads()))
    torch.set_num_threads(max(1, threads))
    t = time.monotonic()
    doc = run_with_tqdm(iter_oneshot(plan), "oneshot")
    print(
        f"{plan.out}: {len(doc['files'])} weights files in {sum(len(f['parts']) for f in doc['files'])} "
        f"parts, {len(doc['batches'])} batches; {time.monotonic() - t:.0f} s"
    )
    if args.into:
        print(copy_batch(args.out, 0, args.into))
    return 0


if __name__ == "__main__":
    run_main(main)
