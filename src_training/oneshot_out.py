"""What :mod:`src_training.oneshot` leaves in ``--out``, and how it travels back in batches.

``--out`` holds, once complete: every trained model exported (:func:`src_training.export.export`)
and split into parts of at most 16 MiB (``teacher.safetensors.part0 ..``), ``logs.tar.gz`` (each
run's config.json, log.csv, summary.json, the mix's split.json) and, written last, ``oneshot.json``:
the manifest of :mod:`napari_lungkd.models.weights_parts` (``files``: sizes and SHA-256 of every
file and part), the ``batches`` the GPU machine can hand back one call each (at most 8 files and
64 MiB), the models' plans and timings, and the mix recipe. :func:`copy_batch` copies one batch to
``$OUT``; :func:`join_folder` joins the fetched parts into verified ``.safetensors`` files.
"""

from __future__ import annotations

import shutil
import tarfile
import time
from pathlib import Path

from napari_lungkd.errors import TrainingError
from napari_lungkd.files import atomic_path, write_json
from napari_lungkd.progress import Progress

MANIFEST = "oneshot.json"
LOGS = "logs.tar.gz"
MANIFEST_RESERVE = 1 << 20
"""Bytes kept for oneshot.json in batch 0 (it lists the batches, so is written after them)."""
RUN_LOGS = ("config.json", "log.csv", "summary.json")
FETCH_ORDER = ("distilled", "baseline", "teacher")
"""Parts come back seed by seed in this order: the first batches hold a complete comparison."""


def write_logs(path: Path, work: Path, names) -> None:
    """``logs.tar.gz`` of the runs ``names`` in ``work/runs`` and the mix's split, atomically."""
    with atomic_path(path) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for name in names:
            for f in RUN_LOGS:
                src = work / "runs" / name / f
                if src.is_file():
                    tar.add(src, arcname=f"{name}/{f}")
        for src, arc in (
            (work / "mix" / "split.json", "mix/split.json"),
            (work / "runs" / "oneshot_progress.json", "oneshot_progress.json"),
        ):
            if src.is_file():
                tar.add(src, arcname=arc)


def _device() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    return {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "amp": "bf16" if cuda and torch.cuda.is_bf16_supported() else None,
        "channels_last": cuda,
    }


def write_outputs(plan, jobs, records, split: dict, timing: dict):
    """Generator: export every job's best.pt, split it into ``plan.out``, then logs.tar.gz and
    oneshot.json (last); returns the oneshot.json document."""
    from napari_lungkd.models.weights_parts import plan_batches, split_file
    from src_training.export import export

    out, work = Path(plan.out), Path(plan.work)
    jobs = sorted(jobs, key=lambda j: (j.seed, FETCH_ORDER.index(j.kind)))
    entries = []
    for i, job in enumerate(jobs):
        yield Progress(i, len(jobs), "export", job.name)
        precision = plan.teacher_precision if job.kind == "teacher" else plan.precision
        full = work / "export" / f"{job.name}.safetensors"
        full.parent.mkdir(parents=True, exist_ok=True)
        export(work / "runs" / job.name / "best.pt", full, precision=precision)
        entry = split_file(full, out)
        entries.append({**entry, "model": job.name, "kind": job.kind, "precision": precision})
    yield Progress(len(jobs), len(jobs), "export")
    write_logs(out / LOGS, work, [j.name for j in jobs])
    sizes = {MANIFEST: MANIFEST_RESERVE, LOGS: (out / LOGS).stat().st_size}
    sizes.update({p["name"]: p["bytes"] for e in entries for p in e["parts"]})
    from src_training.oneshot import MIX_DATA

    recipe = split.get("recipe", {})
    doc = {
        "format": 1,
        "files": entries,
        "batches": plan_batches(sizes),
        "models": records,
        "mix": {
            **recipe,
            "cases": {k: len(v) for k, v in split.get("cases", {}).items()},
            "patients": split.get("patients"),
        },
        "plan": {
            "budget_s": plan.budget_s,
            "tiny": plan.tiny,
            "phantoms": list(plan.phantoms),
            "size": plan.size,
            "inserted": plan.inserted,
            "hosts_pack": str(plan.hosts_pack) if plan.hosts_pack else None,
            "overrides": list(plan.overrides),
            "data": dict(MIX_DATA),
        },
        "timing": {"mix_s": timing["mix_s"], "total_s": round(time.monotonic() - timing["t0"], 1)},
        **_device(),
    }
    write_json(out / MANIFEST, doc)
    if (out / MANIFEST).stat().st_size > MANIFEST_RESERVE:
        raise TrainingError(f"{out / MANIFEST} is larger than the room kept for it in batch 0.")
    return doc


def _manifest(folder) -> dict:
    from napari_lungkd.errors import WeightsError
    from napari_lungkd.models.weights_parts import read_manifest

    try:
        return read_manifest(Path(folder) / MANIFEST)
    except WeightsError as exc:
        raise TrainingError(f"{folder} holds no finished one-shot output ({exc})") from exc


def copy_batch(out, k: int, into) -> str:
    """Copy batch ``k`` of the finished output ``out`` into ``into`` (atomically per file);
    returns one line that says what was copied and what comes next."""
    batches = _manifest(out)["batches"]
    if not 0 <= k < len(batches):
        raise TrainingError(f"{out} has batches 0 to {len(batches) - 1}, not {k}.")
    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    total = 0
    for name in batches[k]:
        with atomic_path(into / name) as tmp:
            shutil.copyfile(Path(out) / name, tmp)
        total += (into / name).stat().st_size
    after = f"next: --batch {k + 1}" if k + 1 < len(batches) else "that was the last"
    return f"batch {k} of {len(batches)} ({len(batches[k])} files, {total / 2**20:.1f} MiB) in {into}; {after}."


def join_folder(folder, into) -> list[Path]:
    """Join the parts that the batches brought into ``folder`` into verified weights files in
    ``into`` (SHA-256 of every part and of every whole file, as oneshot.json says)."""
    from napari_lungkd.models.weights_parts import join_manifest

    _manifest(folder)
    return join_manifest(Path(folder) / MANIFEST, into)
