"""``lungkd segment INPUT``: nodule masks, nodule tables and a JSON report for one CT or many.

INPUT is a CT (DICOM folder or file, NIfTI, MHD/MHA, NRRD) or a folder holding many of them
(every folder holding DICOM files itself, and every image file below INPUT, is one case, as
:func:`napari_lungkd.io.sniff.find_cases` finds them: batch mode, one line of progress per case).
Per case, under ``--out DIR/<case>/``, masks saved by :func:`napari_lungkd.io.masks.save_mask`
(the widget's Save writes the same files):

* ``<model>_mask.nii.gz``: the nodule mask in the CT's own geometry (opens in any viewer),
  labelled: nodule ``i`` (row ``i`` of the CSV, of ``seg.nodules``) is label ``i``
  (``--binary-mask``: 0/1); its provenance sidecar ``<model>_mask.json`` and, with
  ``--dicom-seg`` on a DICOM CT, ``<model>_mask.seg.dcm`` (one segment per nodule);
* ``<model>_nodules.csv``: the nodule table;
* ``report.json``: provenance, what the weights are, timings, warnings, nodules (and with
  ``--model both`` the student-teacher Dice and speed-up,
  :func:`napari_lungkd.scoring.speed.speedup`, also printed per case); one per case folder,
  keeping every model written there (a teacher run after a student run into the same ``--out``
  adds to it: :mod:`napari_lungkd.cli.case_report`).

``<case>`` is the patient ID and series (:mod:`napari_lungkd.cli.cases`). The count printed, the
CSV rows, the mask's labels and the components ``lungkd evaluate`` scores are the same nodules.
One :class:`~napari_lungkd.inference.Segmenter` per model serves every case of the run; a line
per model says what its weights were trained on and how they score, and every load and
segmentation warning is printed on stderr (and kept in report.json).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from napari_lungkd.cli._common import (
    add_json_option,
    plural,
    print_warnings,
    run_with_tqdm,
    write_json,
)
from napari_lungkd.cli.case_report import write_report
from napari_lungkd.cli.cases import case_name, find_cases, result_name, unique

__all__ = ["case_name", "find_cases", "make_segmenters", "one_line", "segment_case", "write_case"]

FILES_WRITTEN = (
    "Writes, per case, into OUT/<PatientID>_s<SeriesNumber>/ (or the file name for images "
    "without a patient ID): <model>_mask.nii.gz (labelled: label i = nodule i = CSV row i; "
    "--binary-mask for 0/1), its provenance sidecar <model>_mask.json, <model>_nodules.csv, "
    "report.json (one per case, keeping every model run into that folder), and with "
    "--dicom-seg <model>_mask.seg.dcm (one segment per nodule)."
)

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
        "--operating-point",
        type=float,
        metavar="SCORE",
        help="false-positive classifier score a candidate needs to count as a nodule (default: the "
        "classifier's own, about 1 false positive per scan on its held-out scans; 0 keeps every candidate)",
    )
    p.add_argument(
        "--classifier",
        default="auto",
        metavar="auto|off|PATH",
        help="false-positive classifier: the model's bundled one where there is one (auto), none (off: "
        "the U-Net mask's components are the nodules), or a classifier file",
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
    p.add_argument(
        "--binary-mask",
        action="store_true",
        help="save the masks as 0/1 instead of label i = nodule i (row i of the CSV)",
    )


def weights_epilog() -> str:
    """What the bundled weights are, for ``--help`` (reads the weights headers only)."""
    from napari_lungkd.models.weights_card import describe_weights

    return "Weights: " + " | ".join(describe_weights(n) for n in ("student", "teacher"))


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "segment",
        help="segment lung nodules in one CT or a folder of CTs",
        description="Segment lung nodules in one CT (a DICOM series folder, one DICOM file of "
        "a series, NIfTI, MHD/MHA, NRRD) or in every CT under a folder. " + FILES_WRITTEN,
        epilog=weights_epilog(),
    )
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
        classifier=getattr(args, "classifier", "auto"),
        operating_point=getattr(args, "operating_point", None),
    )
    names = ["student", "teacher"] if args.model == "both" else [args.model]
    segmenters = {}
    for name in names:
        w = args.teacher_weights if (name == "teacher" and args.model == "both") else args.weights
        segmenters[name] = Segmenter(name, weights=w, settings=settings).load()
    return segmenters


def weights_lines(segmenters: dict) -> dict[str, str]:
    """Per model, one line: what its weights were trained on and how they score."""
    from napari_lungkd.models.weights_card import RANDOM, describe_metadata, where_label

    lines = {}
    for name, segmenter in segmenters.items():
        loaded = segmenter.loaded
        if loaded.weights_sha256 is None:
            lines[name] = f"{name}: {RANDOM}"
        else:
            lines[name] = describe_metadata(
                name, loaded.metadata, loaded.weights_sha256, where_label(loaded.weights_path)
            )
        if segmenter.classifier is not None:
            from napari_lungkd.inference.fp_reduction import describe_classifier

            lines[name] += (
                f"; false-positive classifier: {describe_classifier(segmenter.classifier)}"
            )
    return lines


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
    labels: bool = True,
    weights: dict | None = None,
) -> dict:
    """Masks (through ``save_mask``; labelled unless ``labels`` is false), nodule tables and
    report.json for one case (merged with the models already reported there); this run's report.
    ``weights``: model -> the line of :func:`weights_lines`."""
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
        "warnings": list(ct.warnings),
    }
    weights = weights or {}
    for name, seg in results.items():
        provenance = seg.provenance.to_dict()
        if weights.get(name):
            provenance["weights_description"] = weights[name]
        files = save_mask(
            out_dir / f"{name}_mask.nii.gz",
            seg.mask,
            ct,
            provenance=provenance,
            dicom_seg=dicom_seg,
            overwrite=overwrite,
            labels=labels,
        )
        if dicom_seg and "dicom_seg" not in files:
            note = "no DICOM-SEG written: the CT is not DICOM"
            report["warnings"].append(note)
            print_warnings([note], str(ct.source))
        csv_path = out_dir / f"{name}_nodules.csv"
        write_nodules_csv(csv_path, seg.nodules, overwrite=overwrite)
        report["models"][name] = {
            "mask": str(files["mask"]),
            "files": {kind: str(p) for kind, p in files.items()},
            "nodules_csv": str(csv_path),
            "n_nodules": len(seg.nodules),
            "mask_labels": "binary (0/1)" if not labels else "label i = nodule i = CSV row i",
            "mask_voxels": int(np.count_nonzero(seg.mask)),
            "weights": weights.get(name),
            "timings": {
                **seg.timings.to_dict(),
                "end_to_end_s": round(load_s + _once(seg) + seg.timings.total, 4),
            },
            "provenance": provenance,
            "nodules": nodules_to_rows(seg.nodules),
        }
        report["warnings"] += [f"{name}: {w}" for w in seg.warnings]
    cmp = compare(results)
    if cmp:
        report["comparison"] = cmp
    if extra:
        report.update(extra)
        report["warnings"] += [f"LIDC: {w}" for w in (extra.get("lidc") or {}).get("warnings", ())]
    write_report(out_dir, report)
    return report


def _once(seg) -> float:
    """The Segmenter's one-time costs, reported by its first result only (0 afterwards)."""
    return seg.timings.load + seg.timings.backend_setup


def one_line(i: int, n: int, name: str, report: dict) -> str:
    """The line printed per case: CT load, model load (first case), time, rate, nodule count."""
    parts = []
    for model, r in report["models"].items():
        t = r["timings"]
        once = float(t.get("load", 0.0)) + float(t.get("backend_setup", 0.0))
        loading = f"model load {once:.1f} s + " if once > 0 else ""
        parts.append(
            f"{model} {loading}{t['total']:.1f} s ({t['slices_per_s']:.1f} slices/s), "
            f"{plural(r['n_nodules'], 'nodule')}"
        )
    cmp = report.get("comparison")
    if cmp and cmp["speedup_model"] is not None:
        parts.append(
            f"teacher/student speed-up {cmp['speedup_model']:.2f}x (model s/slice), "
            f"Dice {cmp['dice_student_teacher']:.3f}"
        )
    return f"[{i}/{n}] {name}: CT load {report['load_ct_s']:.1f} s; " + "; ".join(parts)


def load_case(case: Path, where: str):
    """``load_ct(case)`` and its seconds; its warnings printed on stderr, one line each."""
    from napari_lungkd.io import load_ct

    t0 = time.perf_counter()
    ct = load_ct(case)
    load_s = time.perf_counter() - t0
    print_warnings(ct.warnings, where)
    return ct, load_s


def print_weights(lines: dict) -> None:
    for line in lines.values():
        print(f"weights: {line}", flush=True)


def print_result_warnings(results: dict, where: str) -> None:
    for name, seg in results.items():
        print_warnings(seg.warnings, f"{where} {name}")


def run(args) -> int:
    from napari_lungkd.errors import LungKDError

    root = Path(args.input).expanduser()
    cases = find_cases(root)
    segmenters = make_segmenters(args)
    lines = weights_lines(segmenters)
    print_weights(lines)
    out = Path(args.out)
    reports, failures, taken = [], [], set()
    for i, case in enumerate(cases, start=1):
        fallback = case_name(case, root) if len(cases) > 1 else case_name(root, root.parent)
        where = f"[{i}/{len(cases)}] {fallback}"
        try:
            ct, load_s = load_case(case, where)
            name = unique(result_name(ct, fallback), taken)
            results = segment_case(ct, segmenters, desc=f"[{i}/{len(cases)}]")
            print_result_warnings(results, where)
            report = write_case(
                out / name,
                ct,
                results,
                load_s,
                args.overwrite,
                dicom_seg=args.dicom_seg,
                labels=not args.binary_mask,
                weights=lines,
            )
        except LungKDError as exc:
            if len(cases) == 1:
                raise
            failures.append({"case": str(case), "error": str(exc)})
            print(f"[{i}/{len(cases)}] {fallback}: error: {exc}", file=sys.stderr)
            continue
        report["case"] = name
        reports.append(report)
        print(one_line(i, len(cases), name, report), flush=True)
    if args.json:
        write_json(
            args.json,
            {
                "input": str(root),
                "out": str(out),
                "weights": lines,
                "cases": reports,
                "failures": failures,
            },
        )
    return 2 if failures else 0
