"""``lungkd segment INPUT``: nodule masks, nodule tables and a JSON report for one CT or many.

INPUT is a CT (DICOM folder or file, NIfTI, MHD/MHA, NRRD) or a folder holding many of them
(every folder with DICOM files, and every image file below INPUT, is one case: batch mode, one
line of progress per case). Per case, under ``--out DIR/<case>/``:

* ``<model>_mask.nii.gz``: the binary mask in the CT's own geometry (opens in any viewer);
* ``<model>_nodules.csv``: the nodule table;
* ``report.json``: provenance, timings, nodules (and with ``--model both`` the student-teacher
  Dice and speed-up).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from napari_lungkd.cli._common import add_json_option, run_with_tqdm, write_json

MODEL_CHOICES = ("student", "teacher", "both")


def add_model_options(p) -> None:
    p.add_argument(
        "--model", choices=MODEL_CHOICES, default="student", help="which model (default student)"
    )
    p.add_argument(
        "--device", default="auto", help="auto (CUDA, MPS, CPU), cuda, cuda:N, mps or cpu"
    )
    p.add_argument(
        "--weights",
        metavar="PATH",
        help="student (or the single model's) weights file; 'random' for a random-weight test run",
    )
    p.add_argument(
        "--teacher-weights", metavar="PATH", help="teacher weights file with --model both"
    )
    p.add_argument(
        "--threshold", type=float, help="probability threshold (default: the model's own)"
    )
    p.add_argument(
        "--batch-size", type=int, help="slices per batch (default: 4 on CPU, 16-32 on GPU)"
    )
    p.add_argument(
        "--threads", type=int, help="CPU threads (default: all cores this process may use)"
    )
    p.add_argument(
        "--backend",
        choices=("eager", "onnx"),
        default="eager",
        help="eager PyTorch (default) or ONNX Runtime on the CPU",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default="lungkd-results",
        help="output folder (default ./lungkd-results)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing masks and tables")


def register(subparsers) -> None:
    p = subparsers.add_parser("segment", help="segment lung nodules in one CT or a folder of CTs")
    p.add_argument(
        "input",
        metavar="INPUT",
        help="a CT (DICOM folder/file, .nii[.gz], .mhd/.mha, .nrrd) or a folder of many",
    )
    add_model_options(p)
    add_json_option(p)
    p.set_defaults(func=run)


def find_cases(path) -> list[Path]:
    """The CTs under ``path``: itself if it is one file or a single DICOM series folder."""
    from napari_lungkd.errors import CtLoadError
    from napari_lungkd.io.sniff import is_image_file_name

    path = Path(path).expanduser()
    if not path.exists():
        raise CtLoadError(f"{path} does not exist.")
    if path.is_file():
        return [path]
    files = [p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    images = [p for p in files if is_image_file_name(p) and not p.name.endswith("_mask.nii.gz")]
    dicom_dirs = sorted({p.parent for p in files if p.suffix.lower() == ".dcm"})
    cases = dicom_dirs + images
    if len(cases) <= 1:
        return cases or [path]
    return cases


def case_name(case: Path, root: Path) -> str:
    """A short folder name for a case: its path below ``root``, long DICOM UIDs cut to their tail."""
    root = Path(root)
    rel = case.relative_to(root) if root in case.parents else Path(case.name)
    parts = [p if len(p) <= 24 else p[-10:] for p in rel.parts] or [case.name]
    text = "_".join(parts)
    for suffix in (".nii.gz", ".nii", ".mhd", ".mha", ".nrrd", ".dcm"):
        if text.lower().endswith(suffix):
            text = text[: -len(suffix)]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[-120:] or "case"


def load_models(args) -> dict:
    """Load the requested model(s) once for all cases."""
    from napari_lungkd.inference.torch_runner import load_model

    names = ["student", "teacher"] if args.model == "both" else [args.model]
    loaded = {}
    for name in names:
        w = args.teacher_weights if (name == "teacher" and args.model == "both") else args.weights
        loaded[name] = load_model(name, w, build=args.backend != "onnx")
    return loaded


def segment_case(ct, models: dict, args, desc: str = "") -> dict:
    """Run every loaded model on ``ct`` (the teacher reuses the student's preprocessing)."""
    from napari_lungkd.inference.segmenter import iter_segment

    results, prepared = {}, None
    for name, loaded in models.items():
        gen = iter_segment(
            ct,
            loaded,
            device=args.device,
            threshold=args.threshold,
            batch_size=args.batch_size,
            prepared=prepared,
            num_threads=args.threads,
            backend=args.backend,
        )
        seg = run_with_tqdm(gen, desc=f"{desc} {name}".strip())
        prepared = seg.prepared
        results[name] = seg
    return results


def compare(results: dict) -> dict | None:
    if set(results) != {"student", "teacher"}:
        return None
    from napari_lungkd.scoring.metrics import dice

    s, t = results["student"], results["teacher"]
    return {
        "dice_student_teacher": dice(s.mask, t.mask),
        "speedup_model": t.timings["model"] / s.timings["model"] if s.timings["model"] else None,
        "parameters": {
            "student": s.provenance["n_parameters"],
            "teacher": t.provenance["n_parameters"],
        },
    }


def write_case(
    out_dir: Path, ct, results: dict, load_s: float, overwrite: bool, extra: dict | None = None
) -> dict:
    """Masks, nodule tables and report.json for one case; returns the report."""
    from napari_lungkd.inference.nodules import nodules_to_rows, write_nodules_csv
    from napari_lungkd.io.masks import write_mask

    out_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "ct": {
            "source": str(ct.source),
            "patient_id": ct.patient_id,
            "series_uid": ct.series_uid,
            "shape_zyx": list(ct.shape),
            "spacing_mm": list(ct.spacing_mm),
            "warnings": list(ct.warnings),
        },
        "load_ct_s": round(load_s, 4),
        "models": {},
    }
    for name, seg in results.items():
        mask_path = write_mask(out_dir / f"{name}_mask.nii.gz", seg.mask, ct, overwrite=overwrite)
        csv_path = out_dir / f"{name}_nodules.csv"
        write_nodules_csv(csv_path, seg.nodules, overwrite=overwrite)
        report["models"][name] = {
            "mask": str(mask_path),
            "nodules_csv": str(csv_path),
            "n_nodules": len(seg.nodules),
            "mask_voxels": int(seg.mask.sum()),
            "timings": {
                **seg.timings,
                "end_to_end_s": round(load_s + seg.timings["load"] + seg.timings["total"], 4),
            },
            "provenance": seg.provenance,
            "nodules": nodules_to_rows(seg.nodules),
        }
    cmp = compare(results)
    if cmp:
        report["comparison"] = cmp
    if extra:
        report.update(extra)
    write_json(out_dir / "report.json", report)
    return report


def one_line(i: int, n: int, name: str, report: dict) -> str:
    parts = []
    for model, r in report["models"].items():
        t = r["timings"]
        parts.append(
            f"{model} {t['total']:.1f} s ({t['slices_per_s']:.1f} slices/s), {r['n_nodules']} nodules"
        )
    return f"[{i}/{n}] {name}: load {report['load_ct_s']:.1f} s; " + "; ".join(parts)


def run(args) -> int:
    from napari_lungkd.errors import LungKDError
    from napari_lungkd.io import load_ct

    root = Path(args.input).expanduser()
    cases = find_cases(root)
    models = load_models(args)
    out = Path(args.out)
    reports, failures = [], []
    for i, case in enumerate(cases, start=1):
        name = case_name(case, root) if len(cases) > 1 else case_name(root, root.parent)
        try:
            t0 = time.perf_counter()
            ct = load_ct(case)
            load_s = time.perf_counter() - t0
            results = segment_case(ct, models, args, desc=f"[{i}/{len(cases)}]")
            report = write_case(out / name, ct, results, load_s, args.overwrite)
        except LungKDError as exc:
            if len(cases) == 1:
                raise
            failures.append({"case": str(case), "error": str(exc)})
            print(f"[{i}/{len(cases)}] {name}: error: {exc}", file=sys.stderr)
            continue
        report["case"] = name
        reports.append(report)
        print(one_line(i, len(cases), name, report), flush=True)
    if args.json:
        write_json(
            args.json, {"input": str(root), "out": str(out), "cases": reports, "failures": failures}
        )
    return 2 if failures else 0
