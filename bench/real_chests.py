"""The U-Net alone on the real chests: false marks per scan and the Dice of found nodules.

    .venv/bin/python bench/real_chests.py --weights bundled=student old=runs/mix_old/student.safetensors \
        new=runs/mix_new/student.safetensors [--chests LIDC-IDRI-0001,C3N-00247,LUNG1-001] [--json out.json]

Each ``NAME=W`` is a model: a weights file (``.safetensors`` or a training ``best.pt``... exported
first with ``python -m src_training.export``) or a bundled model's name. Every chest of
``src_training.real_chests`` named in ``--chests`` is segmented by the plugin's own pipeline
(Segmenter, CPU) and scored as ``bench/fp_reduction.py`` scores it: a false mark is a component
reaching the model's mask threshold that lies off every marked lesion (LIDC readers' marks,
GTVs, boxes: irrelevant, neither hit nor false); on LIDC scans the consensus nodules (pylidc rule,
level 0.5) are the references, found when a marked component touches them, with the Dice of the
found ones (``scoring.metrics.match_lesions``), the highest probability the model gives a candidate
on a reference nodule ("nodule prob", also below the mask threshold) and how many false marks reach
that probability ("FP at it": the false positives per scan an operating point that finds the
nodule would cost). A model must not have trained on these patients:
pass only held-out chests (the script refuses a chest whose patient is in the weights' training
split when the weights file records one).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_CHESTS = "LIDC-IDRI-0001,C3N-00247,LUNG1-001"


def score_chest(segmenter, chest, ct) -> dict:
    """False marks and found nodules of ``segmenter`` on one real chest."""
    import numpy as np

    from napari_lungkd.inference.candidate_features import FEATURE_NAMES
    from src_training.fp_data import real_table

    keep: list = []
    table = real_table(segmenter, chest, ct, keep)
    seg = keep[0]
    prob = table.features[:, FEATURE_NAMES.index("prob_max")]
    marked = prob >= segmenter.threshold
    false = marked & (table.ref_hit < 0) & ~table.ignored
    on_ref = table.ref_hit >= 0
    row = {
        "chest": chest.name,
        "false_marks": int(false.sum()),
        "marks": int(marked.sum()),
        "references": int(table.n_references),
        "found": int(len(set(table.ref_hit[marked & (table.ref_hit >= 0)].tolist()))),
        "found_dice": None,
        "seconds": round(float(sum(table.seconds.values())), 1),
        # what a lower operating point would cost: the best probability on a reference nodule
        # and the false marks at or above it (the FROC point where that nodule is found)
        "reference_prob": round(float(prob[on_ref].max()), 3) if on_ref.any() else None,
        "false_marks_at_reference_prob": (
            int((~on_ref & ~table.ignored & (prob >= prob[on_ref].max())).sum())
            if on_ref.any()
            else None
        ),
    }
    if chest.marks == "lidc":
        from napari_lungkd.lidc import annotate, find_lidc_xml
        from napari_lungkd.scoring.metrics import match_lesions

        xml = find_lidc_xml(chest.path(), ct.series_uid) or sorted(chest.path().rglob("*.xml"))[0]
        labels = annotate(xml, ct).consensus_labels("pylidc")
        match = match_lesions(np.asarray(seg.mask), labels, ct.spacing_mm)
        dices = [match.nodule_dice[r] for r, comps in match.matched.items() if comps]
        row["found_dice"] = round(float(np.mean(dices)), 3) if dices else None
        row["consensus_found"] = f"{match.tp}/{match.tp + match.fn}"
    return row


def _segmenter(spec: str):
    from napari_lungkd.inference.segmenter import Segmenter
    from napari_lungkd.inference.settings import RunSettings

    path = Path(spec)
    settings = RunSettings(device="cpu")
    if path.suffix in (".safetensors",) and path.is_file():
        from napari_lungkd.models.weights_card import read_header

        # the model its header names (a ResNet-152 file is a teacher)
        name = (read_header(path).get("spec") or {}).get("name") or "student"
        return Segmenter(name, weights=path, settings=settings)
    return Segmenter(spec, settings=settings)


def _trained_on(segmenter) -> set:
    meta = getattr(segmenter.loaded, "metadata", None) or {}
    split = meta.get("data_split") or {}
    parts = split.get("patients") or {}
    return set(parts.get("train") or []) | set(parts.get("val") or [])


def main(argv=None) -> int:
    import numpy as np

    from napari_lungkd.io import load_ct
    from src_training.real_chests import CHESTS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", nargs="+", required=True, metavar="NAME=WEIGHTS")
    ap.add_argument("--chests", default=DEFAULT_CHESTS)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    by_name = {c.name: c for c in CHESTS}
    chests = [by_name[n] for n in args.chests.split(",") if n]
    models = dict(item.split("=", 1) for item in args.weights)
    rows = []
    cts = {c.name: load_ct(c.path()) for c in chests if c.path().exists()}
    for name, spec in models.items():
        segmenter = _segmenter(spec)
        leak = sorted(_trained_on(segmenter) & {c.patient for c in chests})
        if leak:
            print(f"{name}: trained on {leak[0]}; scoring it there would leak. Skipped.")
            continue
        for chest in chests:
            if chest.name not in cts:
                print(f"{chest.name}: not in LUNGKD_REALDATA, skipped")
                continue
            row = {"model": name, **score_chest(segmenter, chest, cts[chest.name])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nmachine: {platform.machine()}, {platform.system()}, CPU; chests: {args.chests}")
    print(
        f"{'model':<10} {'chest':<18} {'false marks':>11} {'found':>7} {'found Dice':>10} "
        f"{'nodule prob':>11} {'FP at it':>8}"
    )
    for r in rows:
        dice = "" if r["found_dice"] is None else f"{r['found_dice']:.3f}"
        found = f"{r['found']}/{r['references']}"
        ref_p = "" if r["reference_prob"] is None else f"{r['reference_prob']:.3f}"
        at = (
            "" if r["false_marks_at_reference_prob"] is None else r["false_marks_at_reference_prob"]
        )
        print(
            f"{r['model']:<10} {r['chest']:<18} {r['false_marks']:>11} {found:>7} {dice:>10} "
            f"{ref_p:>11} {at:>8}"
        )
    for name in models:
        mine = [r["false_marks"] for r in rows if r["model"] == name]
        if mine:
            print(f"{name:<10} {'mean per scan':<18} {np.mean(mine):>11.1f}")
    if args.json:
        args.json.write_text(json.dumps({"chests": args.chests, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
