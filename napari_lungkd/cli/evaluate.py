"""``lungkd evaluate INPUT --lidc XML``: segment, then score against the LIDC readers' consensus.

Everything ``lungkd segment`` writes, plus per model: voxel Dice, IoU, HD95 (mm) and mean surface
distance (mm) against the consensus mask at ``--level``, and lesion matching (TP / FN / FP and
per-nodule Dice); and the reader-vs-reader Dice range, the human ceiling a model is compared to.
Without ``--lidc`` the XML of the series is searched beside INPUT, beside the series' files and
anywhere below INPUT (patient or study folder), the corrected one if several. The components
scored are the nodules of the table, the CSV and the labelled mask (``n_components_scored``).

A folder of several CTs (or any INPUT with ``--plot``) is scored as a set instead: per case a
line, then the FROC pooled over the cases (:mod:`napari_lungkd.cli.evaluate_folder`).
"""

from __future__ import annotations

from pathlib import Path

from napari_lungkd.cli._common import add_json_option, print_warnings, write_json
from napari_lungkd.cli.cases import case_name, find_xml_for, result_name
from napari_lungkd.cli.segment import (
    add_model_options,
    load_case,
    make_segmenters,
    one_line,
    print_result_warnings,
    print_weights,
    segment_case,
    weights_epilog,
    weights_lines,
    write_case,
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="segment a CT (or every CT under a folder) and score it against its reference",
        description="Segment a CT and score the nodules against the LIDC-IDRI readers' consensus. "
        "Writes what `lungkd segment` writes, plus the scores in report.json. A folder of several "
        "CTs (or any INPUT with --plot) is scored as a set: every CT with a reference (its LIDC XML, "
        "or a phantom's truth from `lungkd phantom`) is segmented and scored, one line per case, "
        "then the FROC pooled over the cases (sensitivity at 1/8 to 8 false positives per scan, "
        "CPM, 95 % bootstrap intervals) and the Dice of the found nodules; no masks are written, "
        "only --json and --plot.",
        epilog=weights_epilog(),
    )
    p.add_argument(
        "input",
        metavar="INPUT",
        help="a CT: a patient, study or series folder of DICOM, one DICOM file of the series, "
        "or an image file on the same grid; or a folder of several CTs, scored as a set",
    )
    p.add_argument(
        "--lidc",
        metavar="XML",
        help="the LIDC XML (default: the series' XML, found beside it or below INPUT)",
    )
    p.add_argument(
        "--level",
        type=float,
        default=0.5,
        help="consensus level: share of readers that must agree (default 0.5)",
    )
    p.add_argument(
        "--rule",
        choices=("pylidc", "luna16"),
        default="pylidc",
        help="which nodules count: all (pylidc) or >= 3 readers (luna16)",
    )
    p.add_argument(
        "--plot",
        metavar="PNG",
        help="score INPUT as a set of cases and draw the pooled FROC to this PNG file",
    )
    add_model_options(p)
    add_json_option(p)
    p.set_defaults(func=run)


def score(mask, lidc, spacing_mm, rule: str = "pylidc") -> dict:
    """Dice, IoU, HD95, surface distance and lesion matching of ``mask`` vs the LIDC consensus."""
    from napari_lungkd.scoring.metrics import (
        dice,
        hd95_mm,
        iou,
        match_lesions,
        mean_surface_distance_mm,
    )

    labels = lidc.consensus_labels(rule)
    ref = labels > 0
    match = match_lesions(mask, labels, spacing_mm)
    matched = {c for comps in match.matched.values() for c in comps}
    return {
        "n_components_scored": len(matched) + match.fp,
        "dice": dice(mask, ref),
        "iou": iou(mask, ref),
        "hd95_mm": hd95_mm(mask, ref, spacing_mm),
        "mean_surface_distance_mm": mean_surface_distance_mm(mask, ref, spacing_mm),
        "lesions": match.to_dict(),
        "reference_voxels": int(ref.sum()),
    }


def reader_ceiling(lidc) -> dict:
    from napari_lungkd.scoring.metrics import reader_vs_reader_dice

    agree = reader_vs_reader_dice(lidc.reader_volumes())
    return {"mean": agree.mean, "min": agree.min, "max": agree.max, "pairs": len(agree.pairs)}


def _nan_to_none(obj):
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def run(args) -> int:
    from napari_lungkd.cli.evaluate_folder import folder_cases, run_folder
    from napari_lungkd.errors import LidcXmlError
    from napari_lungkd.lidc import annotate

    cases = folder_cases(args)
    if cases is not None:
        return run_folder(args, cases)
    case = Path(args.input).expanduser()
    if args.lidc and not Path(args.lidc).expanduser().is_file():
        raise LidcXmlError(f"--lidc {args.lidc} does not exist.")
    fallback = case_name(case, case.parent)
    ct, load_s = load_case(case, fallback)
    xml = Path(args.lidc).expanduser() if args.lidc else find_xml_for(case, ct)
    if xml is None:
        raise LidcXmlError(
            f"No LIDC XML of series {ct.series_uid} found in or below {case}; "
            "pass one with --lidc XML."
        )
    lidc = annotate(xml, ct=ct, level=args.level)
    print_warnings(lidc.warnings, f"LIDC {xml.name}")
    segmenters = make_segmenters(args)
    lines = weights_lines(segmenters)
    print_weights(lines)
    results = segment_case(ct, segmenters, desc="[1/1]")
    print_result_warnings(results, fallback)
    scores = {
        name: score(seg.mask, lidc, ct.spacing_mm, args.rule) for name, seg in results.items()
    }
    extra = {
        "lidc": {
            "xml": str(xml),
            "level": args.level,
            "rule": args.rule,
            "n_readers": lidc.read.n_readers,
            "n_nodules": len(lidc.nodules),
            "reader_vs_reader_dice": reader_ceiling(lidc),
            "warnings": list(lidc.warnings),
        },
        "scores": scores,
    }
    name = result_name(ct, fallback)
    report = write_case(
        Path(args.out) / name,
        ct,
        results,
        load_s,
        args.overwrite,
        extra=_nan_to_none(extra),
        labels=not args.binary_mask,
        weights=lines,
    )
    report["case"] = name
    print(one_line(1, 1, name, report))
    for model, s in scores.items():
        les = s["lesions"]
        print(
            f"  {model}: Dice {s['dice']:.3f} vs LIDC consensus (level {args.level}); "
            f"{s['n_components_scored']} nodules scored: TP {les['tp']} FN {les['fn']} FP {les['fp']}"
        )
    ceiling = extra["lidc"]["reader_vs_reader_dice"]
    if ceiling["mean"] is not None:
        print(
            f"  readers vs each other: Dice {ceiling['min']:.3f}-{ceiling['max']:.3f} (mean {ceiling['mean']:.3f})"
        )
    if args.json:
        write_json(args.json, report)
    return 0
