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
from src_training.export import _metrics_from, export

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


def bundle(checkpoints: dict, precision: dict, metrics_json=None, out_dir=BUNDLE_DIR) -> dict:
    """Export ``{role: checkpoint}`` into ``out_dir``; return the registry that was written."""
    out_dir = Path(out_dir)
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
        done = export(ckpt, path, name=spec_name, metrics=metrics, precision=precision[role])
        if done["bytes"] > MAX_FILE_BYTES:
            path.unlink()
            raise TrainingError(
                f"{path.name} is {done['bytes'] / 1e6:.1f} MB, over 95 MB; use --precision int8."
            )
        total += done["bytes"]
        registry[name] = {"file": path.name, "sha256": done["sha256"], "precision": precision[role]}
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
    args = ap.parse_args(argv)
    prec = {role: args.precision for role, _, _ in ROLES}
    if "=" in args.precision:
        prec = {role: "fp32" for role, _, _ in ROLES}
        for item in args.precision.split(","):
            role, _, p = item.partition("=")
            prec[role.strip()] = p.strip()
    checkpoints = {"teacher": args.teacher, "student": args.student, "baseline": args.baseline}
    reg = bundle({k: v for k, v in checkpoints.items() if v}, prec, args.metrics, args.out)
    for name, entry in reg.items():
        print(f"{name}: {entry['file']} ({entry['precision']}) sha256 {entry['sha256']}")
    return 0


if __name__ == "__main__":
    run_main(main)
