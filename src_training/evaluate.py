"""The thesis's results table for any set of weights, on held-out cases of the cache.

    python -m src_training.evaluate --cache data/cache \
        --model teacher=runs/teacher/best.pt \
        --model baseline=runs/base_s0/best.pt,runs/base_s1/best.pt,runs/base_s2/best.pt \
        --model distilled=runs/kd_s0/best.pt,runs/kd_s1/best.pt,runs/kd_s2/best.pt \
        --out results/table

Every model file (a training ``.pt`` or an exported ``.safetensors``) segments every case of the
chosen split part through a ``napari_lungkd.inference.Segmenter`` — the plugin's own code path: lung
region, preprocessing, batching, threshold — so the numbers are what a user of the plugin gets.
All models run in the same process, one after the other, so their timings compare.

Columns: parameters; seconds per CT (segment's wall time, model load excluded) and milliseconds per
slice (model only, from segment's timings) from the same run; Dice per nodule (mean over reference
nodules, 0 for a missed one); global voxel Dice (pooled over all cases); HD95 in mm (mean over scans
where both masks are non-empty); lesion sensitivity; false positives per scan; and as the field
scores detection (``scoring.froc``, LUNA16 hit rule, nodules under 3 mm and a host's own lesions
irrelevant): sensitivity at 1 and 4 false positives per scan, CPM, Dice of the found nodules. Several files of one
model (seeds) give mean ± std.

Leakage guard: a case whose patient is among the *model's own* training patients (recorded in the
checkpoint / weights metadata) or the split's training patients is refused with TrainingError.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from napari_lungkd.errors import TrainingError
from napari_lungkd.files import atomic_write_bytes, write_json
from napari_lungkd.progress import Progress, run_with_tqdm
from src_training import run_main
from src_training.data import open_cases
from src_training.prepare import check_no_leakage, read_split

COLUMNS = [
    ("n_parameters_m", "Params (M)", 2),
    ("s_per_ct", "s / CT", 3),
    ("ms_per_slice", "ms / slice", 2),
    ("nodule_dice", "Dice / nodule", 3),
    ("global_dice", "Global Dice", 3),
    ("hd95_mm", "HD95 (mm)", 2),
    ("sensitivity", "Sensitivity", 3),
    ("fp_per_scan", "FP / scan", 2),
    ("sens_at_1fp", "Sens. @1 FP/scan", 3),
    ("sens_at_4fp", "Sens. @4 FP/scan", 3),
    ("cpm", "CPM", 3),
    ("found_dice", "Dice of found", 3),
]


def load_for_inference(path):
    """``(LoadedModel, data_split)`` from a training checkpoint or an exported weights file."""
    from napari_lungkd.inference.torch_runner import LoadedModel
    from src_training.checkpoints import build_trained, read_weights

    t0 = time.perf_counter()
    w = read_weights(path)
    module = build_trained(w)
    loaded = LoadedModel(module, w.spec, w.sha256, w.path, time.perf_counter() - t0, w.metadata)
    return loaded, w.data_split


def case_ct(case):
    from napari_lungkd.ct import CtVolume

    return CtVolume(
        hu=np.asarray(case.hu),
        spacing_mm=case.spacing_mm,
        patient_id=case.patient_id,
        series_uid=case.case_id,
        source=str(case.folder),
    )


def score_model(loaded, cases, device: str, threads: int | None):
    """Generator: segment every case with one model, yield Progress, return its row + per-case list."""
    from napari_lungkd.inference import Segmenter
    from napari_lungkd.progress import run_to_end
    from napari_lungkd.scoring.detections import labels_truth, segmentation_candidates
    from napari_lungkd.scoring.froc import froc
    from napari_lungkd.scoring.hits import score_scan
    from napari_lungkd.scoring.metrics import (
        dice,
        dice_from_counts,
        hd95_mm,
        match_lesions,
        summarise_matches,
    )

    segmenter = Segmenter(loaded, device=device, num_threads=threads).load()  # one per model
    scans = []
    inter = n_pred = n_ref = 0
    matches, per_case, s_per_ct, ms_slice, hd95 = [], [], [], [], []
    n_inf = 0
    for i, case in enumerate(cases):
        yield Progress(i, len(cases), "evaluate", f"{loaded.name} {case.case_id}")
        ct = case_ct(case)
        ref = np.asarray(case.mask) > 0
        t0 = time.perf_counter()
        seg = run_to_end(segmenter.iter_segment(ct))
        wall = time.perf_counter() - t0
        pred = seg.mask > 0
        inter += int(np.logical_and(pred, ref).sum())
        n_pred += int(pred.sum())
        n_ref += int(ref.sum())
        m = match_lesions(seg.mask, np.asarray(case.labels), case.spacing_mm)
        matches.append(m)
        cands, cand_labels, _ = segmentation_candidates(seg)
        truth = labels_truth(case.labels, case.spacing_mm, ignore=case.ignore, source=case.case_id)
        scans.append(score_scan(truth.case(cands, cand_labels, name=case.case_id)))
        h = hd95_mm(pred, ref, case.spacing_mm) if (pred.any() and ref.any()) else None
        if pred.any() != ref.any():
            n_inf += 1
        if h is not None:
            hd95.append(h)
        s_per_ct.append(wall)
        ms_slice.append(1000.0 * seg.timings.model / max(1, seg.timings.slices))
        per_case.append(
            {
                "case": case.case_id,
                "patient": case.patient_id,
                "dice": dice(pred, ref),
                "hd95_mm": h,
                "seconds": wall,
                "timings": seg.timings.to_dict(),
                **m.to_dict(),
            }
        )
    pooled = summarise_matches(matches)
    fr = froc(scans, bootstrap=0)
    sens = dict(zip(fr.fp_rates, fr.sensitivities))
    found = [d for sc in scans for d in sc.nodule_dice if d is not None]
    dices = [d for m in matches for d in m.nodule_dice.values()]
    row = {
        "n_parameters_m": loaded.n_parameters / 1e6,
        "s_per_ct": float(np.mean(s_per_ct)),
        "ms_per_slice": float(np.mean(ms_slice)),
        "nodule_dice": float(np.mean(dices)) if dices else None,
        "global_dice": dice_from_counts(inter, n_pred, n_ref),
        "hd95_mm": float(np.mean(hd95)) if hd95 else None,
        "hd95_scans_one_empty": n_inf,
        "sensitivity": pooled["sensitivity"],
        "fp_per_scan": pooled["fp_per_scan"],
        "sens_at_1fp": sens.get(1.0),
        "sens_at_4fp": sens.get(4.0),
        "cpm": fr.cpm,
        "found_dice": float(np.mean(found)) if found else None,
        "froc_references": sum(sc.n_references for sc in scans),
        "froc_ignored": sum(sc.n_ignored for sc in scans),
        "scans": len(cases),
        "reference_nodules": pooled["tp"] + pooled["fn"],
    }
    yield Progress(len(cases), len(cases), "evaluate", loaded.name)
    return row, per_case


def mean_std(rows: list[dict]) -> dict:
    """Per column: mean and sample std over seeds (std 0 for one seed; None values skipped)."""
    out = {}
    for key, _, _ in COLUMNS:
        vals = [r[key] for r in rows if r.get(key) is not None]
        out[key] = (
            None
            if not vals
            else {
                "mean": float(np.mean(vals)),
                "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                "n": len(vals),
            }
        )
    return out


def markdown_table(groups: dict, meta: dict) -> str:
    head = "| Model | Seeds | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for label, g in groups.items():
        cells = []
        for key, _, digits in COLUMNS:
            v = g["summary"][key]
            if v is None:
                cells.append("–")
            elif v["n"] > 1:
                cells.append(f"{v['mean']:.{digits}f} ± {v['std']:.{digits}f}")
            else:
                cells.append(f"{v['mean']:.{digits}f}")
        lines.append(f"| {label} | {len(g['files'])} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"{meta['n_cases']} held-out cases ({meta['part']} part of {meta['split']}), reference: "
        f"{meta.get('reference')}; device {meta['device']}; mean ± std over seeds where several."
    )
    return "\n".join(lines) + "\n"


def iter_evaluate(
    cache,
    split_path,
    models: dict[str, list[str]],
    part: str = "test",
    device: str = "cpu",
    threads: int | None = None,
    limit: int | None = None,
):
    """Generator: score every model file on the split's ``part``; returns the result document."""
    split = read_split(split_path)
    case_ids = split["cases"][part][: limit or None]
    if not case_ids:
        raise TrainingError(f"The {part} part of {split_path} has no cases.")
    cases = open_cases(cache, case_ids)
    case_patients = {c.case_id: c.patient_id for c in cases}
    if part != "train":
        check_no_leakage(case_patients, split["patients"]["train"])
    groups = {}
    for label, files in models.items():
        rows = []
        for f in files:
            loaded, data_split = load_for_inference(f)
            check_no_leakage(case_patients, (data_split.get("patients") or {}).get("train", []))
            row, per_case = yield from score_model(loaded, cases, device, threads)
            rows.append(
                {
                    "file": str(f),
                    "weights_sha256": loaded.weights_sha256,
                    "encoder": loaded.spec.encoder,
                    **row,
                    "cases": per_case,
                }
            )
        groups[label] = {"files": [str(f) for f in files], "runs": rows, "summary": mean_std(rows)}
    import torch

    meta = {
        "cache": str(cache),
        "split": str(split_path),
        "part": part,
        "n_cases": len(cases),
        "reference": split.get("reference"),
        "device": device,
        "threads": threads or torch.get_num_threads(),
        "torch": torch.__version__,
    }
    return {"meta": meta, "groups": groups, "markdown": markdown_table(groups, meta)}


def parse_models(items) -> dict[str, list[str]]:
    models = {}
    for item in items:
        if "=" not in item:
            raise TrainingError(f"--model {item!r} must look like LABEL=file[,file...].")
        label, files = item.split("=", 1)
        models[label.strip()] = [f for f in files.split(",") if f]
    return models


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m src_training.evaluate", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--cache", required=True)
    ap.add_argument("--split", default=None, help="default: <cache>/split.json")
    ap.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="LABEL=FILE[,FILE...]",
        help="a model and its weights (one file per seed); repeatable",
    )
    ap.add_argument("--part", default="test", choices=["test", "val", "train"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None, help="evaluate the first N cases only")
    ap.add_argument("--out", required=True, help="output stem: writes STEM.md and STEM.json")
    args = ap.parse_args(argv)
    split = args.split or str(Path(args.cache) / "split.json")
    doc = run_with_tqdm(
        iter_evaluate(
            args.cache,
            split,
            parse_models(args.model),
            args.part,
            args.device,
            args.threads,
            args.limit,
        ),
        "evaluate",
    )
    out = Path(args.out)
    write_json(out.with_suffix(".json"), doc)
    atomic_write_bytes(out.with_suffix(".md"), doc["markdown"].encode())
    print(doc["markdown"])
    return 0


if __name__ == "__main__":
    run_main(main)
