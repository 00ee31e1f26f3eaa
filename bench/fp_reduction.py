"""False positives per scan before and after the false-positive classifier, scored held out by patient.

    .venv/bin/python bench/fp_reduction.py [--cache data/fp_cache] [--model student] [--plot docs/froc_fp.png]
    .venv/bin/python bench/fp_reduction.py --cnn FOLD_A.safetensors FOLD_B.safetensors   # 3-D CNNs

Needs the candidate tables of ``python -m src_training.fp_data`` (the U-Net run once per case).
With boosted trees (the default) every real patient is scored by a classifier trained without
that patient (its scans with
inserted nodules included), every phantom by one trained on the other half of the phantoms; the
CC BY-NC scans (LUNG1-001, IBSI_ct_phantom) never train. With ``--cnn`` each scan is scored by the 3-D
classifier file (of ``src_training.fp_cnn3d --fold A`` / ``B``) that held its patient out. Prints, per scan: candidates, the
U-Net's own false marks (candidates reaching its 0.5 mask threshold, off every marked lesion),
false positives left at the operating point (~1 FP/scan on the trainable real-anatomy scans), and
nodules found before / after / in all; then the pooled FROC and CPM with 95 % bootstrap intervals
over scans, for the U-Net alone (score = max probability) and with the classifier.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    from napari_lungkd.inference.candidate_features import FEATURE_NAMES
    from napari_lungkd.scoring.froc import froc
    from src_training.fp_classifier import (
        TARGET_FP_PER_SCAN,
        default_operating_point,
        held_out_scores,
        scan_rows,
        scan_scores,
    )
    from src_training.fp_data import load_tables

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=REPO / "data" / "fp_cache")
    ap.add_argument("--model", default="student")
    ap.add_argument("--plot", type=Path, default=None, help="write the FROC curves to this PNG")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument(
        "--cnn",
        nargs="+",
        type=Path,
        default=None,
        help="score with these 3-D CNN files instead of the trees (each scan by the file that "
        "held it out: e.g. distilled_s0.safetensors of --fold A and of --fold B)",
    )
    args = ap.parse_args(argv)
    tables = load_tables(args.cache, args.model)
    if not tables:
        print(
            f"no candidate tables in {args.cache / args.model}: run python -m src_training.fp_data first"
        )
        return 2
    if args.cnn:
        from src_training.fp_cnn3d_scores import held_out_from_files

        held = held_out_from_files(tables, args.cnn, log=lambda s: None)
        scorer = "3-D CNN " + ", ".join(str(p) for p in args.cnn)
    else:
        held = held_out_scores(tables, log=lambda s: None)
        scorer = "boosted trees, trained once per held-out patient"
    thr = default_operating_point(held.tables, held.scores)["default_threshold"]
    rows = scan_rows(held, thr)
    print(
        f"machine: {platform.machine()}, {platform.system()}; model: {args.model}; cases: {len(tables)}"
    )
    print(f"classifier: {scorer}; scans held out: {len(held.tables)}")
    print(
        f"operating point (score >= {thr:.3f}): ~{TARGET_FP_PER_SCAN:g} FP/scan on trainable real-anatomy scans, held out"
    )
    print()
    print(
        "| scan | kind | trains | candidates | FP before | FP after | nodules found before / after / all |"
    )
    print("|---|---|---|---:|---:|---:|---|")
    for r in rows:
        if r["kind"] == "phantom":
            continue
        print(
            f"| {r['scan']} | {r['kind']} | {'yes' if r['trainable'] else 'no'} | {r['candidates']} | "
            f"{r['fp_before']} | {r['fp_after']} | {r['found_before']} / {r['found_after']} / {r['nodules']} |"
        )
    for kind in ("real", "inserted", "phantom"):
        sel = [r for r in rows if r["kind"] == kind]
        if not sel:
            continue
        before = sum(r["fp_before"] for r in sel)
        after = sum(r["fp_after"] for r in sel)
        fb = sum(r["found_before"] for r in sel)
        fa = sum(r["found_after"] for r in sel)
        n = sum(r["nodules"] for r in sel)
        red = f"{100 * (1 - after / before):.1f} %" if before else "n/a"
        print(
            f"| **all {kind} ({len(sel)} scans)** | | | {sum(r['candidates'] for r in sel)} | "
            f"{before / len(sel):.1f}/scan | {after / len(sel):.2f}/scan ({red} fewer) | {fb} / {fa} / {n} |"
        )
    print()
    p_max = FEATURE_NAMES.index("prob_max")
    curves = {}
    print("| scans | scoring | sensitivity at 1/8, 1/4, 1/2, 1, 2, 4, 8 FP/scan | CPM [95 % CI] |")
    print("|---|---|---|---|")
    for kind in ("inserted", "phantom"):
        idx = [i for i, t in enumerate(held.tables) if t.kind == kind]
        if not idx or not sum(held.tables[i].n_references for i in idx):
            continue
        tabs = [held.tables[i] for i in idx]
        for label, scores in (
            ("U-Net alone", [t.features[:, p_max] for t in tabs]),
            ("U-Net + classifier", [held.scores[i] for i in idx]),
        ):
            res = froc(scan_scores(tabs, scores), bootstrap=args.bootstrap, seed=0)
            curves[f"{kind}: {label}"] = res
            sens = ", ".join("-" if v is None else f"{v:.2f}" for v in res.sensitivities)
            b = res.bootstrap
            ci_txt = f" [{b.cpm_lower:.2f}, {b.cpm_upper:.2f}]" if b is not None else ""
            print(
                f"| {kind} ({len(tabs)}, {sum(t.n_references for t in tabs)} nodules) | {label} | {sens} | {res.cpm:.3f}{ci_txt} |"
            )
    if args.plot and curves:
        from napari_lungkd.scoring.froc_plot import plot_froc

        plot_froc(curves, args.plot, title=f"FROC, {args.model}: held out by patient")
        print(f"\nwrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
