"""Put trained weights into the package: the files `lungkd demo` and the widget use by default.

    python -m src_training.bundle --teacher runs/cpu/teacher/best.pt \
        --student runs/cpu/student_kd/best.pt --baseline runs/cpu/student_baseline/best.pt \
        --precision int8 [--metrics results/table.json]

Each checkpoint is exported (:func:`src_training.export.export`) into
``napari_lungkd/models/weights_data/<name>.safetensors`` (names ``teacher``, ``student`` for the distilled
student, ``student_baseline``) and ``registry.json`` pins each file's SHA-256, so that weight
resolution finds and verifies them from a checkout and from an installed wheel. The repository
allows 95 MB a file and 100 MB together (issue 8); the script refuses to write more. Use int8 only
where ``evaluate`` showed it keeps Dice within 0.005 of fp32.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_lungkd.errors import TrainingError
from napari_lungkd.files import write_json
from src_training import run_main
from src_training.export import _metrics_from, export, restamp

BUNDLE_DIR = Path(__file__).resolve().parents[1] / "napari_lungkd" / "models" / "weights_data"
MAX_FILE_BYTES = 95_000_000
MAX_TOTAL_BYTES = 100_000_000
ROLES = (
    ("teacher", "teacher", "teacher"),
    ("student", "student", "distilled"),
    ("baseline", "student_baseline", "baseline"),
)


def _find_metrics(files, label: str):
    """The evaluate row labelled ``label`` in the first of ``files`` that has one."""
    for f in files:
        try:
            return _metrics_from(f, label, None)
        except TrainingError:
            continue
    return None


def training_data(oneshot_json, model: str) -> dict:
    """What ``model`` (a run name of a one-shot call, e.g. ``distilled_s1``) was trained on, in
    short, from that call's ``oneshot.json``: the phantoms, the real hosts, the recipe, the seed,
    its steps and the machine."""
    import json

    doc = json.loads(Path(oneshot_json).read_text())
    mix, rec = doc.get("mix") or {}, next((m for m in doc["models"] if m["name"] == model), None)
    if rec is None:
        raise TrainingError(
            f"{oneshot_json} has no model {model!r}: {[m['name'] for m in doc['models']]}"
        )
    seeds = mix.get("phantom_seeds") or []
    kind = "classic" if mix.get("classic") else "varied"
    return {
        "phantoms": f"{len(seeds)} {kind} phantoms, seeds {min(seeds)}-{max(seeds)}"
        if seeds
        else "none",
        "real_hosts": list(mix.get("hosts") or []),
        "inserted_per_host": mix.get("inserted_per_host"),
        "cases": mix.get("cases"),
        "crops": (doc.get("plan") or {}).get("data"),  # None in calls before it was recorded
        "seed": rec["seed"],
        "steps": rec["steps"],
        "train_s": rec["train_s"],
        "device": f"{doc.get('device')} ({doc.get('amp') or 'fp32'})",
    }


def real_ct_note(real_json, model: str) -> str | None:
    """One line from ``bench/real_chests.py --json``: false marks per scan on the held-out real
    chests and the found LIDC nodules with their Dice."""
    import json

    rows = [r for r in json.loads(Path(real_json).read_text())["rows"] if r["model"] == model]
    if not rows:
        return None
    fp = sum(r["false_marks"] for r in rows) / len(rows)
    refs = sum(r.get("references") or 0 for r in rows)
    found = sum(r.get("found") or 0 for r in rows)
    dices = [r["found_dice"] for r in rows if r.get("found_dice") is not None]
    note = f"held out: {', '.join(r['chest'] for r in rows)}: {fp:.1f} false marks per scan"
    if refs:
        note += f"; nodules found {found}/{refs}" + (
            f", Dice {', '.join(f'{d:.2f}' for d in dices)}" if dices else ""
        )
    return note + " (bench/real_chests.py, mask threshold)"


def bundle(
    checkpoints: dict,
    precision: dict,
    metrics_json=None,
    out_dir=BUNDLE_DIR,
    extra: dict | None = None,
    notes: dict | None = None,
) -> dict:
    """Export ``{role: checkpoint}`` into ``out_dir``; return the registry that was written.

    A checkpoint may be an exported ``.safetensors`` (from a GPU machine): it is re-stamped
    (:func:`src_training.export.restamp`) with the metrics, its precision kept; ``extra``
    ({role: dict}) goes into each header, ``notes`` ({role: text}) into the registry's ``real_ct``."""
    out_dir = Path(out_dir)
    extra, notes = extra or {}, notes or {}
    precision = dict(precision)  # a re-stamped file keeps its own: the caller's dict stays as given
    registry = {}
    total = 0
    for role, name, label in ROLES:
        ckpt = checkpoints.get(role)
        if ckpt is None:
            continue
        # an int8 file carries the row that scored the int8 file itself, where there is one
        metrics = _find_metrics(metrics_json or [], f"{label}_{precision[role]}") or _find_metrics(
            metrics_json or [], label
        )
        path = out_dir / f"{name}.safetensors"
        spec_name = "teacher" if role == "teacher" else "student"
        if Path(ckpt).suffix == ".safetensors":
            from napari_lungkd.models.weights_card import read_header

            stored = str(read_header(ckpt).get("precision", "float32"))
            precision[role] = next(
                (p for p, word in (("int8", "int8"), ("fp16", "float16")) if word in stored), "fp32"
            )
            metrics = _find_metrics(
                metrics_json or [], f"{label}_{precision[role]}"
            ) or _find_metrics(metrics_json or [], label)
            done = restamp(ckpt, path, name=spec_name, metrics=metrics, extra=extra.get(role))
        else:
            done = export(ckpt, path, name=spec_name, metrics=metrics, precision=precision[role])
        if done["bytes"] > MAX_FILE_BYTES:
            path.unlink()
            raise TrainingError(
                f"{path.name} is {done['bytes'] / 1e6:.1f} MB, over 95 MB; use --precision int8."
            )
        total += done["bytes"]
        registry[name] = {"file": path.name, "sha256": done["sha256"], "precision": precision[role]}
        if notes.get(role):
            registry[name]["real_ct"] = notes[role]
    if total > MAX_TOTAL_BYTES:
        raise TrainingError(
            f"The bundle is {total / 1e6:.1f} MB, over 100 MB; use int8 for more files."
        )
    write_json(out_dir / "registry.json", registry)
    return registry


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m src_training.bundle", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--teacher", help="teacher checkpoint (best.pt)")
    ap.add_argument("--student", help="distilled student checkpoint (best.pt)")
    ap.add_argument("--baseline", help="baseline student checkpoint (best.pt)")
    ap.add_argument(
        "--precision",
        default="int8",
        help="fp32, fp16 or int8; or role=prec,... e.g. teacher=int8,student=fp16",
    )
    ap.add_argument(
        "--metrics",
        action="append",
        default=[],
        help="an evaluate JSON with rows labelled teacher, distilled or baseline (repeatable)",
    )
    ap.add_argument("--out", default=str(BUNDLE_DIR))
    ap.add_argument("--oneshot", default=None, help="oneshot.json of the call that trained them")
    ap.add_argument(
        "--runs",
        default=None,
        help="their run names in --oneshot / --real-chests, e.g. teacher=teacher,student=distilled_s1",
    )
    ap.add_argument("--real-chests", default=None, help="bench/real_chests.py --json output")
    ap.add_argument(
        "--real-names",
        default=None,
        help="their model names in --real-chests, e.g. student=d1,baseline=b0,teacher=teacher_new",
    )
    args = ap.parse_args(argv)

    def pairs(text):
        return dict(item.split("=", 1) for item in (text or "").split(",") if "=" in item)

    runs, real_names = pairs(args.runs), pairs(args.real_names)
    extra = (
        {r: {"training_data": training_data(args.oneshot, n)} for r, n in runs.items()}
        if args.oneshot
        else {}
    )
    notes = {}
    if args.real_chests:
        notes = {r: real_ct_note(args.real_chests, n) for r, n in real_names.items()}
    prec = {role: args.precision for role, _, _ in ROLES}
    if "=" in args.precision:
        prec = {role: "fp32" for role, _, _ in ROLES}
        for item in args.precision.split(","):
            role, _, p = item.partition("=")
            prec[role.strip()] = p.strip()
    checkpoints = {"teacher": args.teacher, "student": args.student, "baseline": args.baseline}
    reg = bundle(
        {k: v for k, v in checkpoints.items() if v}, prec, args.metrics, args.out, extra, notes
    )
    for name, entry in reg.items():
        print(f"{name}: {entry['file']} ({entry['precision']}) sha256 {entry['sha256']}")
    return 0


if __name__ == "__main__":
    run_main(main)
