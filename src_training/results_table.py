"""Merge evaluate results into the README's results table, beside the thesis's numbers.

    python -m src_training.results_table results/eval_teacher.json results/eval_baseline.json \
        results/eval_distilled.json [--out results/table.md]

Rows are the models of the evaluate JSONs, in the order given; a model scored with several weights
files (training seeds) shows mean ± std over them. The table also says whether the distilled and
the baseline student differ by more than noise: seed k of one against seed k of the other
(``paired``), per-nodule Dice differences over the same reference nodules, pooled over the seed
pairs, with their mean, a 95 % bootstrap interval over cases, and how many nodules each side wins.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from napari_lungkd.files import atomic_write_bytes
from src_training import run_main

THESIS = {"teacher": 0.604, "distilled": 0.678, "baseline": 0.555}
COLUMNS = (
    ("n_parameters_m", "Params (M)", "{:.2f}"),
    ("s_per_ct", "CPU s / CT", "{:.1f}"),
    ("ms_per_slice", "ms / slice", "{:.0f}"),
    ("nodule_dice", "Dice / nodule", "{:.3f}"),
    ("global_dice", "Global Dice", "{:.3f}"),
    ("hd95_mm", "HD95 (mm)", "{:.1f}"),
    ("sensitivity", "Sensitivity", "{:.2f}"),
    ("fp_per_scan", "FP / scan", "{:.1f}"),
    ("sens_at_1fp", "Sens. @1 FP/scan", "{:.2f}"),
    ("sens_at_4fp", "Sens. @4 FP/scan", "{:.2f}"),
    ("cpm", "CPM", "{:.3f}"),
    ("found_dice", "Dice of found", "{:.3f}"),
)
BOOTSTRAP, CONFIDENCE = 2000, 0.95


def per_nodule_dice(group: dict, run: int = 0) -> dict:
    """``{(case, nodule): dice}`` of weights file ``run`` of a group."""
    r = group["runs"][run]
    return {(c["case"], k): v for c in r["cases"] for k, v in c["nodule_dice"].items()}


def paired(a: dict, b: dict, seed: int = 0) -> dict:
    """Differences ``a - b`` over the keys both hold; keys are ``(case, ...)``: the 95 % interval
    of the mean resamples cases (a case's nodules go together)."""
    import numpy as np

    keys = sorted(set(a) & set(b))
    diffs = np.array([a[k] - b[k] for k in keys], dtype=float)
    n = len(diffs)
    mean = float(diffs.mean()) if n else float("nan")
    sd = float(diffs.std(ddof=1)) if n > 1 else float("nan")
    lo = hi = float("nan")
    cases = sorted({k[0] for k in keys})
    if n > 1 and len(cases) > 1:
        by_case = [diffs[[i for i, k in enumerate(keys) if k[0] == c]] for c in cases]
        rng = np.random.default_rng(seed)
        means = []
        for _ in range(BOOTSTRAP):
            pick = rng.integers(0, len(cases), len(cases))
            vals = np.concatenate([by_case[i] for i in pick])
            means.append(vals.mean() if len(vals) else 0.0)
        lo, hi = (
            float(v) for v in np.quantile(means, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
        )
    return {
        "n": n,
        "mean": mean,
        "se": sd / math.sqrt(n) if n > 1 else float("nan"),
        "ci95": [lo, hi],
        "wins": int((diffs > 0).sum()),
        "losses": int((diffs < 0).sum()),
    }


def seed_paired(distilled: dict, baseline: dict) -> dict:
    """Seed k against seed k, per-nodule Dice, pooled over the seed pairs (``paired``)."""
    n = min(len(distilled["runs"]), len(baseline["runs"]))
    a, b = {}, {}
    for k in range(n):
        a.update({(c, k, nod): v for (c, nod), v in per_nodule_dice(distilled, k).items()})
        b.update({(c, k, nod): v for (c, nod), v in per_nodule_dice(baseline, k).items()})
    return {**paired(a, b), "seed_pairs": n}


def _cell(stat, fmt: str) -> str:
    if not stat:
        return "–"
    text = fmt.format(stat["mean"])
    return f"{text} ± {fmt.format(stat['std'])}" if stat.get("n", 1) > 1 else text


def table(files) -> tuple[str, dict]:
    groups, meta = {}, None
    for f in files:
        doc = json.loads(Path(f).read_text())
        meta = meta or doc["meta"]
        groups.update(doc["groups"])
    head = "| Model | " + " | ".join(c[1] for c in COLUMNS) + " | Thesis Dice (LIDC-IDRI) |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for label, g in groups.items():
        s = g["summary"]
        cells = [_cell(s.get(key), fmt) for key, _, fmt in COLUMNS]
        thesis = THESIS.get(label.split("_")[0])
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {thesis if thesis else '–'} |")
    extra = {}
    if "distilled" in groups and "baseline" in groups:
        p = seed_paired(groups["distilled"], groups["baseline"])
        extra["distilled_vs_baseline"] = p
        lo, hi = p["ci95"]
        verdict = "within noise" if lo <= 0 <= hi else "beyond noise"
        lines.append("")
        lines.append(
            f"Distilled − baseline, seed k against seed k ({p['seed_pairs']} pairs), over the same "
            f"{p['n']} reference nodules × seeds: per-nodule Dice {p['mean']:+.3f} "
            f"[{lo:+.3f}, {hi:+.3f}] (95 % bootstrap over cases), distilled better on {p['wins']}, "
            f"worse on {p['losses']}: {verdict}."
        )
    seeds = max(len(g["runs"]) for g in groups.values())
    lines.append("")
    lines.append(
        f"{meta['n_cases']} held-out cases ({meta['part']} part of {meta['split']}), reference "
        f"{meta['reference']}, device {meta['device']}, {meta['threads']} thread(s), "
        f"{'one training seed' if seeds == 1 else f'mean ± std over {seeds} training seeds'}."
    )
    return "\n".join(lines) + "\n", extra


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m src_training.results_table", description=__doc__.splitlines()[0]
    )
    ap.add_argument("results", nargs="+", help="evaluate JSON files")
    ap.add_argument("--out", default=None, help="also write the table (Markdown) here")
    args = ap.parse_args(argv)
    text, _ = table(args.results)
    print(text)
    if args.out:
        atomic_write_bytes(args.out, text.encode())
    return 0


if __name__ == "__main__":
    run_main(main)
