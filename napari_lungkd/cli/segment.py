"""``lungkd segment INPUT``: nodule masks, nodule tables and a JSON report for one CT or many.

INPUT is a CT (DICOM folder or file, NIfTI, MHD/MHA, NRRD) or a folder holding many of them
(every folder holding DICOM files itself, and every image file below INPUT, is one case, as
:func:`napari_lungkd.io.sniff.find_cases` finds them: batch mode, one line of progress per case).
Per case, under ``--out DIR/<case>/``, masks saved by :func:`napari_lungkd.io.masks.save_mask`
(the widget's Save writes the same files):

* ``<model>_mask.nii.gz``: the binary mask in the CT's own geometry (opens in any viewer), its
  provenance sidecar ``<model>_mask.json`` and, with ``--dicom-seg`` on a DICOM CT,
  ``<model>_mask.seg.dcm``;
* ``<model>_nodules.csv``: the nodule table;
* ``report.json``: provenance, timings, nodules (and with ``--model both`` the student-teacher
  Dice and speed-up, :func:`napari_lungkd.scoring.speed.speedup`, also printed per case).

One :class:`~napari_lungkd.inference.Segmenter` per model serves every case of the run.
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
    p.add_argument(
        "--dicom-seg",
        action="store_true",
        help="also write each mask as DICOM-SEG (<model>_mask.seg.dcm) when the CT is DICOM",
    )
    add_json_option(p)
    p.set_defaults(func=run)


def find_cases(path) -> list[Path]:
    """The CTs under ``path`` (:func:`napari_lungkd.io.sniff.find_cases`), our own masks left out.

    A path with no CT in it raises :class:`CtLoadError` with the reason ``load_ct`` would give.
    """
    from napari_lungkd.errors import CtLoadError
    from napari_lungkd.io.sniff import find_cases as find_ct_inputs

    found = find_ct_inputs(path)
    refused = [c for c in found if not c.is_ct]
    if refused:
        raise CtLoadError(refused[0].reason)
    cases = [c.path for c in found if not c.path.name.endswith("_mask.nii.gz")]
    if not cases:
        raise CtLoadError(f"{path} holds no CT to segment, only masks that lungkd wrote.")
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


def make_segmenters(args) -> dict:
    """One Segmenter per requested model for the whole run, loaded now: the weights are read and
    hashed, the module built and the runner (ONNX session) made once, and a missing weights file
    or device is refused before the first case."""
    from napari_lungkd.inference import RunSettings, Segmenter

    settings = RunSettings(
        device=args.device,
        backend=args.backend,
        num_threads=args.threads,
        batch_size=args.batch_size,
        threshold=args.threshold,
    )
    names = ["student", "teacher"] if args.model == "both" else [args.model]
    segmenters = {}
    for name in names:
        w = args.teacher_weights if (name == "teacher" and args.model == "both") else args.weights
        segmenters[name] = Segmenter(name, weights=w, settings=settings).load()
    return segmenters


def segment_case(ct, segmenters: dict, desc: str = "") -> dict:
    """Run every Segmenter on ``ct`` (the teacher reuses the student's preprocessing)."""
    results, prepared = {}, None
    for name, segmenter in segmenters.items():
        gen = segmenter.iter_segment(ct, prepared=prepared)
        seg = run_with_tqdm(gen, desc=f"{desc} {name}".strip())
        prepared = seg.prepared
        results[name] = seg
    return results


def compare(results: dict) -> dict | None:
    """Student vs teacher: Dice of the masks, speed-up (model seconds per slice), parameters."""
    if set(results) != {"student", "teacher"}:
        return None
    from napari_lungkd.scoring.metrics import dice
    from napari_lungkd.scoring.speed import speedup

    s, t = results["student"], results["teacher"]
    return {
        "dice_student_teacher": dice(s.mask, t.mask),
        "speedup_model": speedup(t.timings, s.timings),
        "parameters": {
            "student": s.provenance.n_parameters,
            "teacher": t.provenance.n_parameters,
        },
    }


def write_case(
    out_dir: Path,
    ct,
    results: dict,
    load_s: float,
    overwrite: bool,
    extra: dict | None = None,
    dicom_seg: bool = False,
) -> dict:
    """Masks (through ``save_mask``), nodule tables and report.json for one case; the report."""
    import numpy as np

    from napari_lungkd.inference.nodules import nodules_to_rows, write_nodules_csv
    from napari_lungkd.io.masks import save_mask

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
        files = save_mask(
            out_dir / f"{name}_mask.nii.gz",
            seg.mask,
            ct,
            provenance=seg.provenance,
            dicom_seg=dicom_seg,
            overwrite=overwrite,
        )
        if dicom_seg and "dicom_seg" not in files:
            print(f"{ct.source}: no DICOM-SEG, the CT is not DICOM", file=sys.stderr)
        csv_path = out_dir / f"{name}_nodules.csv"
        write_nodules_csv(csv_path, seg.nodules, overwrite=overwrite)
        report["models"][name] = {
            "mask": str(files["mask"]),
            "files": {kind: str(p) for kind, p in files.items()},
            "nodules_csv": str(csv_path),
            "n_nodules": len(seg.nodules),
            "mask_voxels": int(np.count_nonzero(seg.mask)),
            "timings": {
                **seg.timings.to_dict(),
                "end_to_end_s": round(load_s + _once(seg) + seg.timings.total, 4),
            },
            "provenance": seg.provenance.to_dict(),
            "nodules": nodules_to_rows(seg.nodules),
        }
    cmp = compare(results)
    if cmp:
        report["comparison"] = cmp
    if extra:
        report.update(extra)
    write_json(out_dir / "report.json", report)
    return report


def _once(seg) -> float:
    """The Segmenter's one-time costs, reported by its first result only (0 afterwards)."""
    return seg.timings.load + seg.timings.backend_setup


def one_line(i: int, n: int, name: str, report: dict) -> str:
    parts = []
    for model, r in report["models"].items():
        t = r["timings"]
        parts.append(
            f"{model} {t['total']:.1f} s ({t['slices_per_s']:.1f} slices/s), {r['n_nodules']} nodules"
        )
    cmp = report.get("comparison")
    if cmp and cmp["speedup_model"] is not None:
        parts.append(
            f"teacher/student speed-up {cmp['speedup_model']:.2f}x (model s/slice), "
            f"Dice {cmp['dice_student_teacher']:.3f}"
        )
    return f"[{i}/{n}] {name}: load {report['load_ct_s']:.1f} s; " + "; ".join(parts)


def run(args) -> int:
    from napari_lungkd.errors import LungKDError
    from napari_lungkd.io import load_ct

    root = Path(args.input).expanduser()
    cases = find_cases(root)
    segmenters = make_segmenters(args)
    out = Path(args.out)
    reports, failures = [], []
    for i, case in enumerate(cases, start=1):
        name = case_name(case, root) if len(cases) > 1 else case_name(root, root.parent)
        try:
            t0 = time.perf_counter()
            ct = load_ct(case)
            load_s = time.perf_counter() - t0
            results = segment_case(ct, segmenters, desc=f"[{i}/{len(cases)}]")
            report = write_case(
                out / name, ct, results, load_s, args.overwrite, dicom_seg=args.dicom_seg
            )
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
