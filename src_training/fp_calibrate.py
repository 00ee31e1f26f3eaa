"""Give a 3-D CNN classifier the operating points of another U-Net's candidates.

    python -m src_training.fp_calibrate --classifier data/cnn_gpu/long_A/teacher_s0.safetensors \
        --cache data/fp_cache_new --model teacher --out napari_lungkd/models/weights_data/teacher_fp.safetensors

A 3-D classifier scores a 32 mm patch around a candidate, whichever U-Net found it; but how many
false positives per scan a score threshold lets through depends on how many candidates that U-Net
makes (the teacher U-Net makes four times as many as the student). This scores the candidate tables
of ``--model`` for the scans the classifier held out (its header's ``data_split``; the classifier
never trained on those patients), measures the operating points there
(:func:`~src_training.fp_classifier.default_operating_point`) and writes the same network with
those points as a new verified file; the header says which tables they came from. With
``--scored-by`` (the files of both folds) every trainable real patient is scored by the fold that
held it out, and the points are those of them all (what ``bench/fp_reduction.py --cnn`` uses).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def calibrate(classifier: Path, tables, out: Path, unet: str, scored_by=None) -> dict:
    """Write ``classifier`` to ``out`` with the operating points of ``tables`` (each scored by the
    file of ``scored_by``, default ``[classifier]``, that held its patient out)."""
    from napari_lungkd.errors import TrainingError
    from napari_lungkd.models.cnn3d import load_cnn3d, save_cnn3d
    from src_training.fp_classifier import default_operating_point
    from src_training.fp_cnn3d_scores import held_out_from_files

    held = held_out_from_files(tables, scored_by or [classifier], log=lambda s: None)
    points = default_operating_point(held.tables, held.scores)
    if not points:
        raise TrainingError(f"No held-out scan of {classifier} holds a nodule among these tables.")
    model, header = load_cnn3d(classifier)
    keep = ("role", "training", "data_split", "metrics")
    meta = {k: header[k] for k in keep if k in header}
    meta["training"] = {
        **meta.get("training", {}),
        "unet_operating_points": unet,
        "operating_points_scored_by": [Path(p).name for p in (scored_by or [classifier])],
    }
    meta.update(points)
    save_cnn3d(out, model, header["arch"], meta)
    return points


def main(argv=None) -> int:
    from src_training.fp_data import load_tables

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classifier", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=Path("data/fp_cache_new"))
    ap.add_argument("--model", default="teacher", help="the U-Net whose candidates calibrate")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--scored-by",
        nargs="+",
        type=Path,
        default=None,
        help="score each scan by the file of these that held it out (e.g. the fold A and fold B "
        "files: the points of every trainable real patient, cross-validated); default: the classifier",
    )
    args = ap.parse_args(argv)
    tables = load_tables(args.cache, args.model)
    points = calibrate(args.classifier, tables, args.out, args.model, args.scored_by)
    one = next(o for o in points["operating_points"] if o["fp_per_scan"] == 1.0)
    print(
        f"wrote {args.out}: default threshold {points['default_threshold']:.3f} "
        f"(~1 FP/scan, sensitivity {one['sensitivity']:.3f} on "
        f"{len(points['operating_points_from'])} held-out {args.model} scans)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
