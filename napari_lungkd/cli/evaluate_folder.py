"""``lungkd evaluate FOLDER``: every case under a folder scored as the field scores a detector.

The folder form runs when INPUT holds several CTs, or with ``--plot`` (then one CT is a set of
one). Each CT under INPUT (:func:`napari_lungkd.cli.cases.find_cases`; a phantom's truth file is
no CT) is loaded and its reference looked for: a phantom's truth beside it
(:func:`~napari_lungkd.scoring.detections.find_phantom_truth`: the true nodules), else its LIDC
XML, found as the one-case form finds it (:func:`~napari_lungkd.cli.cases.find_xml_for`; LUNA16's
references and irrelevant findings, :func:`~napari_lungkd.scoring.reference.lidc_truth`). A CT
with neither is skipped with one line. The models are loaded once, at the first case with a
reference. Each case is segmented under a progress bar and its detections scored
(:func:`~napari_lungkd.scoring.hits.score_scan`; every candidate with its classifier score where
the false-positive classifier ran); one line per case: nodules in the reference, those found and
the false marks at the operating point (what the mask shows), Dice of the found nodules. Then, per
model, the FROC pooled over the scored cases (:func:`~napari_lungkd.scoring.froc.froc`:
sensitivity at 1/8 to 8 false positives per scan, CPM, 95 % bootstrap intervals over scans) and
the Dice of the found nodules; ``--plot`` draws the curves to a PNG, ``--json`` writes per-case
rows and the pooled FROC. No mask is written, and nothing before the end: Ctrl-C leaves no file.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

from napari_lungkd.cli._common import plural, print_warnings, write_json
from napari_lungkd.cli.cases import case_name, find_cases, find_xml_for, result_name, unique
from napari_lungkd.cli.segment import (
    load_case,
    make_segmenters,
    print_result_warnings,
    print_weights,
    segment_case,
    weights_lines,
)
from napari_lungkd.errors import CtLoadError, ExportError, LidcXmlError, LungKDError

BOOTSTRAP_SAMPLES = 1000


def folder_cases(args) -> list[Path] | None:
    """The CTs to score as a set, or None when INPUT is one CT for the one-case form (module doc)."""
    from napari_lungkd.scoring.detections import is_phantom_truth

    root = Path(args.input).expanduser()
    if not root.is_dir() and not args.plot:
        return None
    found = [c for c in find_cases(root) if not is_phantom_truth(c)]
    if not found:
        raise CtLoadError(f"{root} holds no CT, only a phantom's truth labels.")
    # a patient folder's radiograph or report series is no second case: it stays one CT
    cases = [c for c in found if _looks_like_ct(c)] or found
    if len(cases) == 1 and not args.plot:
        return None
    if len(cases) < len(found):
        n_other = len(found) - len(cases)
        print(
            f"{root}: {plural(n_other, 'DICOM series', 'DICOM series')} of another modality left out"
        )
    if args.lidc and len(cases) > 1:
        raise LidcXmlError(
            f"--lidc names one series' XML, but {root} holds {len(cases)} CTs, each scored against "
            "its own reference; leave --lidc out."
        )
    return cases


def _looks_like_ct(case: Path, files_to_try: int = 5) -> bool:
    """False for a DICOM folder whose first files are headers of another modality (a radiograph,
    a report); image files and anything unclear count as CT (loading will tell)."""
    from napari_lungkd.io.dicom.header import NotCtImage, looks_like_dicom, read_image_header

    if not case.is_dir():
        return True
    tried = 0
    for path in sorted(p for p in case.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            if not looks_like_dicom(path):
                continue
            read_image_header(path)
            return True
        except NotCtImage as exc:
            if exc.kind == "broken":
                return True
        tried += 1
        if tried >= files_to_try:
            break
    return tried == 0


def _check_plot(path) -> None:
    if not path:
        return
    if Path(path).suffix.lower() != ".png":
        raise ExportError(
            f"--plot {path}: the plot is a PNG image; give a file name ending in .png."
        )
    if importlib.util.find_spec("matplotlib") is None:
        raise ExportError(
            "--plot needs matplotlib, which is not installed (pip install 'napari-lungkd[bench]')."
        )


def find_reference(case: Path, ct, level: float, lidc_xml=None):
    """``(kind, file, truth)`` of a case (module doc), or None when it has no reference.
    ``lidc_xml``: the XML given with --lidc (a set of one CT), used as given."""
    from napari_lungkd.scoring.detections import find_phantom_truth, phantom_truth

    truth = None if lidc_xml else find_phantom_truth(case)
    if truth is not None:
        return "phantom truth", truth, phantom_truth(truth, ct)
    xml = Path(lidc_xml).expanduser() if lidc_xml else find_xml_for(case, ct)
    if xml is None:
        return None
    from napari_lungkd.lidc import annotate
    from napari_lungkd.scoring.reference import lidc_truth

    lidc = annotate(xml, ct=ct, level=level)
    print_warnings(lidc.warnings, f"LIDC {xml.name}")
    return "LIDC XML", xml, lidc_truth(lidc)


def score_case(seg, truth, name: str) -> dict:
    """One model on one case: its :class:`ScanScore` and the numbers at its operating point."""
    from napari_lungkd.scoring.detections import segmentation_candidates
    from napari_lungkd.scoring.hits import score_scan

    cands, labels, op = segmentation_candidates(seg)
    scan = score_scan(truth.case(cands, labels, name=name))
    t = -math.inf if op is None else op
    dices = [
        d
        for s, d in zip(scan.reference_scores, scan.nodule_dice)
        if s is not None and s >= t and d is not None
    ]
    return {
        "scan": scan,
        "operating_point": op,
        "candidates": len(cands),
        "found": scan.found_at(t),
        "false_marks": scan.false_positives_at(t),
        "dice_found_mean": sum(dices) / len(dices) if dices else None,
    }


def case_line(i: int, n: int, name: str, kind: str, n_refs: int, scored: dict) -> str:
    parts = []
    for model, s in scored.items():
        dice = "-" if s["dice_found_mean"] is None else f"{s['dice_found_mean']:.3f}"
        parts.append(
            f"{model} {s['found']} found, {plural(s['false_marks'], 'false mark')}, "
            f"Dice of found {dice} ({plural(s['candidates'], 'candidate')} scored)"
        )
    return f"[{i}/{n}] {name} ({kind}, {plural(n_refs, 'nodule')}): " + "; ".join(parts)


def _clean(obj):
    """NaN and infinity -> None, for JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def run_folder(args, cases: list[Path]) -> int:
    from napari_lungkd.scoring.detections import TRUTH_LABELS_NAME
    from napari_lungkd.scoring.froc import froc

    _check_plot(args.plot)
    if args.lidc and not Path(args.lidc).expanduser().is_file():
        raise LidcXmlError(f"--lidc {args.lidc} does not exist.")
    root = Path(args.input).expanduser()
    n = len(cases)
    segmenters, lines = None, {}
    rows, skipped, failures, taken = [], [], [], set()
    per_model: dict[str, list] = {}
    ops: dict[str, float | None] = {}
    for i, case in enumerate(cases, start=1):
        fallback = case_name(case, root) if n > 1 else case_name(root, root.parent)
        where = f"[{i}/{n}] {fallback}"
        try:
            ct, _load_s = load_case(case, where)
            name = unique(result_name(ct, fallback), taken)
            ref = find_reference(case, ct, args.level, args.lidc)
            if ref is None:
                reason = f"no LIDC XML of series {ct.series_uid} and no phantom truth found"
                skipped.append({"case": name, "path": str(case), "reason": reason})
                print(f"[{i}/{n}] {name}: skipped: {reason}", flush=True)
                continue
            kind, ref_file, truth = ref
            print_warnings(truth.warnings, f"{where} {Path(ref_file).name}")
            if segmenters is None:  # once, at the first case that can be scored
                segmenters = make_segmenters(args)
                lines = weights_lines(segmenters)
                print_weights(lines)
            results = segment_case(ct, segmenters, desc=f"[{i}/{n}]")
            print_result_warnings(results, where)
            scored = {m: score_case(seg, truth, name) for m, seg in results.items()}
            del results, ct
        except LungKDError as exc:
            failures.append({"case": str(case), "error": str(exc)})
            print(f"[{i}/{n}] {fallback}: error: {exc}", file=sys.stderr, flush=True)
            continue
        for m, s in scored.items():
            per_model.setdefault(m, []).append(s["scan"])
            ops.setdefault(m, s["operating_point"])
        n_refs = len(truth.references)
        print(case_line(i, n, name, kind, n_refs, scored), flush=True)
        rows.append(
            {
                "case": name,
                "path": str(case),
                "reference": kind,
                "reference_file": str(ref_file),
                "nodules": n_refs,
                "irrelevant_findings": len(truth.irrelevant),
                "models": {
                    m: {**{k: v for k, v in s.items() if k != "scan"}, "scan": s["scan"].to_dict()}
                    for m, s in scored.items()
                },
            }
        )
    if not rows:
        if failures and not skipped:
            raise LungKDError(f"No CT under {root} could be scored: {len(failures)} failed.")
        failed = f", {len(failures)} failed" if failures else ""
        raise LidcXmlError(
            f"No CT under {root} has a reference to score against (an LIDC XML of its series or a "
            f"phantom's {TRUTH_LABELS_NAME}); {plural(len(skipped), 'CT')} skipped{failed}."
        )
    pooled = {m: froc(scans, bootstrap=BOOTSTRAP_SAMPLES, seed=0) for m, scans in per_model.items()}
    for m, res in pooled.items():
        op = ops.get(m)
        at = (
            "no classifier: every detection is a mark"
            if op is None
            else f"operating point {op:.3f}"
        )
        print(f"\n{m}: FROC pooled over {plural(res.n_scans, 'scan')} ({at})")
        print(res.table(threshold=op))
    if skipped or failures:
        print(f"\n{plural(len(skipped), 'CT')} skipped (no reference), {len(failures)} failed.")
    if args.plot:
        from napari_lungkd.scoring.froc_plot import plot_froc

        title = f"FROC: {plural(len(rows), 'scan')} under {root.name or root}"
        plot_froc(pooled, args.plot, title)
        print(f"wrote {args.plot}")
    if args.json:
        doc = {
            "input": str(root),
            "weights": lines,
            "level": args.level,
            "cases": rows,
            "skipped": skipped,
            "failures": failures,
            "operating_point": ops,
            "froc": {m: res.to_dict() for m, res in pooled.items()},
            "plot": str(args.plot) if args.plot else None,
        }
        write_json(args.json, _clean(doc))
    return 2 if failures else 0
