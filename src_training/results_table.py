"""Merge evaluate results into the README's results table, beside the thesis's numbers.

    python -m src_training.results_table results/eval_teacher.json results/eval_baseline.json \
        results/eval_distilled.json [--out results/table.md]

Rows are the models of the evaluate JSONs, in the order given. Because one training seed gives no
spread over seeds, the table also says whether the distilled and the baseline student differ by
more than noise: a paired comparison over the same reference nodules (per-nodule Dice,
mean difference ± its standard error, and how many nodules each side wins).
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
)


def per_nodule_dice(group: dict) -> dict:
    """``{(case, nodule): dice}`` of the first weights file of a group."""
    run = group["runs"][0]
    return {(c["case"], k): v for c in run["cases"] for k, v in c["nodule_dice"].items()}


def paired(a: dict, b: dict) -> dict:
    keys = sorted(set(a) & set(b))
    diffs = [a[k] - b[k] for k in keys]
    n = len(diffs)
    mean = sum(diffs) / n if n else float("nan")
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else float("nan")
    return {
        "n": n,
        "mean": mean,
        "se": sd / math.sqrt(n) if n > 1 else float("nan"),
        "wins": sum(d > 0 for d in diffs),
        "losses": sum(d < 0 for d in diffs),
    }


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
        cells = [fmt.format(s[key]["mean"]) if s.get(key) else "–" for key, _, fmt in COLUMNS]
        thesis = THESIS.get(label.split("_")[0])
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {thesis if thesis else '–'} |")
    extra = {}
    if "distilled" in groups and "baseline" in groups:
        p = paired(per_nodule_dice(groups["distilled"]), per_nodule_dice(groups["baseline"]))
        extra["distilled_vs_baseline"] = p
        verdict = "within noise" if abs(p["mean"]) < 2 * p["se"] else "more than 2 standard errors"
        lines.append("")
        lines.append(
            f"Distilled − baseline, paired over the same {p['n']} reference nodules: per-nodule Dice "
            f"{p['mean']:+.3f} ± {p['se']:.3f} (s.e.), distilled better on {p['wins']}, worse on "
            f"{p['losses']}: {verdict}."
        )
    lines.append("")
    lines.append(
        f"{meta['n_cases']} held-out cases ({meta['part']} part of {meta['split']}), reference "
        f"{meta['reference']}, device {meta['device']}, {meta['threads']} thread(s), one training seed."
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
