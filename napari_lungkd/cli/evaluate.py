"""``lungkd evaluate INPUT --lidc XML``: segment, then score against the LIDC readers' consensus.

Everything ``lungkd segment`` writes, plus per model: voxel Dice, IoU, HD95 (mm) and mean surface
distance (mm) against the consensus mask at ``--level``, and lesion matching (TP / FN / FP and
per-nodule Dice); and the reader-vs-reader Dice range, the human ceiling a model is compared to.
Without ``--lidc`` the XML beside the DICOM series is used (the corrected one if several).
"""

from __future__ import annotations

import time
from pathlib import Path

from napari_lungkd.cli._common import add_json_option, write_json
from napari_lungkd.cli.segment import (
    add_model_options,
    case_name,
    make_segmenters,
    one_line,
    segment_case,
    write_case,
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="segment a CT and score it against its LIDC-IDRI annotations"
    )
    p.add_argument(
        "input",
        metavar="INPUT",
        help="a CT (DICOM series folder, or an image file on the same grid)",
    )
    p.add_argument(
        "--lidc", metavar="XML", help="the LIDC XML (default: the one beside the DICOM series)"
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
    return {
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
    from napari_lungkd.errors import LidcXmlError
    from napari_lungkd.io import load_ct
    from napari_lungkd.lidc import annotate
    from napari_lungkd.lidc.files import find_lidc_xml

    case = Path(args.input).expanduser()
    t0 = time.perf_counter()
    ct = load_ct(case)
    load_s = time.perf_counter() - t0
    xml = (
        Path(args.lidc)
        if args.lidc
        else (find_lidc_xml(case, ct.series_uid) if case.is_dir() else None)
    )
    if xml is None:
        raise LidcXmlError(f"No LIDC XML found beside {case}; pass one with --lidc XML.")
    lidc = annotate(xml, ct=ct, level=args.level)
    results = segment_case(ct, make_segmenters(args), desc="[1/1]")
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
    name = case_name(case, case.parent)
    report = write_case(
        Path(args.out) / name, ct, results, load_s, args.overwrite, extra=_nan_to_none(extra)
    )
    report["case"] = name
    print(one_line(1, 1, name, report))
    for model, s in scores.items():
        les = s["lesions"]
        print(
            f"  {model}: Dice {s['dice']:.3f} vs LIDC consensus (level {args.level}); nodules TP {les['tp']} FN {les['fn']} FP {les['fp']}"
        )
    ceiling = extra["lidc"]["reader_vs_reader_dice"]
    if ceiling["mean"] is not None:
        print(
            f"  readers vs each other: Dice {ceiling['min']:.3f}-{ceiling['max']:.3f} (mean {ceiling['mean']:.3f})"
        )
    if args.json:
        write_json(args.json, report)
    return 0
