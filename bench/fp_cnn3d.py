"""The 3-D CNN false-positive classifiers side by side: teacher / baseline student / distilled student.

    nice -n 10 .venv/bin/python bench/fp_cnn3d.py [--cache data/fp_cache_new] [--seeds 0,1,2]
        [--out data/fp_cnn3d] [--threads 1] [--json results/fp_cnn3d.json]

Trains the three with :mod:`src_training.fp_cnn3d` (the teacher once, the students once per seed)
on the training split and scores them held out by patient (phantoms 5012-5023; the real chests
LIDC-IDRI-0001, C3N-00247, LUNG1-001, IBSI_ct_phantom and their copies with inserted nodules).
Prints parameters, ms per candidate (CPU, batches of 64, median of repeats, torch threads as
given), AUC over labelled candidates and CPM (mean FROC sensitivity at 1/8..8 FP/scan, pooled over
scans, candidates the U-Net missed count as missed) per held-out group; students as mean ± sd
over seeds. For reference on the same split: the U-Net alone (score = its max probability) and the
boosted-tree classifier on candidate features (:mod:`src_training.fp_classifier`).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def ms_per_candidate(path: Path, patches: np.ndarray, batch: int = 64, repeats: int = 5) -> float:
    """Median wall time per candidate of the network in ``path`` on ``batch`` patches."""
    import torch

    from napari_lungkd.models.cnn3d import load_cnn3d

    model, _ = load_cnn3d(path)
    x = torch.as_tensor(patches[:batch])
    times = []
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times)) / len(x)


def rescore(tables, out: Path) -> dict:
    """The report of :func:`~src_training.fp_cnn3d.iter_run` from the files it wrote, the
    held-out scans scored again (e.g. once more scans are in the cache); no retraining."""
    from napari_lungkd.models.cnn3d import load_cnn3d, n_parameters
    from napari_lungkd.progress import run_to_end
    from src_training.fp_cnn3d import iter_score_tables, split
    from src_training.fp_cnn3d_scores import metrics

    _, test = split(tables)
    runs, trained = [], set()
    for path in sorted(out.glob("*_s*.safetensors")):
        model, header = load_cnn3d(path)
        train_cases = header["data_split"]["train_cases"]
        clash = {t.name for t in test} & set(train_cases)
        if clash:
            raise SystemExit(f"{path} was trained on held-out scans {sorted(clash)}")
        trained |= set(train_cases)
        scores = run_to_end(iter_score_tables(model, test))
        runs.append(
            {
                "role": header["role"],
                "arch": header["arch"],
                "seed": header["training"]["seed"],
                "params": n_parameters(model),
                "held_out": metrics(test, scores),
                "path": str(path),
            }
        )
    order = {"teacher": 0, "baseline": 1, "distilled": 2}
    runs.sort(key=lambda r: (order.get(r["role"], 3), r["seed"]))
    return {
        "train_cases": sorted(trained),
        "held_out_cases": [t.name for t in test],
        "runs": runs,
    }


def reference_rows(tables) -> list[dict]:
    """U-Net alone and boosted trees on the same split."""
    from napari_lungkd.inference.candidate_features import FEATURE_NAMES
    from napari_lungkd.models.tree_ensemble import from_sklearn
    from src_training.fp_classifier import fit
    from src_training.fp_cnn3d import split
    from src_training.fp_cnn3d_scores import metrics

    train, test = split(tables)
    p_max = FEATURE_NAMES.index("prob_max")
    rows = [
        {
            "model": "U-Net alone (max prob.)",
            "runs": [metrics(test, [t.features[:, p_max] for t in test])],
        }
    ]
    try:
        trees = from_sklearn(fit(train, 0), FEATURE_NAMES)
        scores = [trees.predict_proba(t.features) if len(t.y) else np.zeros(0) for t in test]
        rows.append({"model": "boosted trees (features)", "runs": [metrics(test, scores)]})
    except (ImportError, ValueError) as exc:
        print(f"boosted trees left out: {exc}")
    return rows


def _stat(values) -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.3f}"
    return f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}"


def table(rows: list[dict], groups) -> str:
    head = "| classifier | seeds | parameters | ms / candidate |"
    head += "".join(f" AUC {g} | CPM {g} |" for g in groups)
    lines = [head, "|---|---:|---:|---:|" + "---:|---:|" * len(groups)]
    for r in rows:
        cells = [
            r["model"],
            str(len(r["runs"])) if "params" in r else "",
            f"{r['params']:,}" if "params" in r else "",
            f"{r['ms']:.2f}" if "ms" in r else "",
        ]
        for g in groups:
            cells.append(_stat([m[g]["auc"] for m in r["runs"]]))
            cells.append(_stat([m[g]["cpm"] for m in r["runs"]]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    import torch

    from napari_lungkd.progress import run_with_tqdm
    from src_training.fp_cnn3d import iter_run
    from src_training.fp_cnn3d_scores import GROUPS
    from src_training.fp_data import load_tables

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=REPO / "data" / "fp_cache_new")
    ap.add_argument("--model", default="student", help="the U-Net whose candidates are used")
    ap.add_argument("--out", type=Path, default=REPO / "data" / "fp_cnn3d")
    ap.add_argument("--seeds", default="0,1,2", help="student seeds (the teacher uses the first)")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (training and timing)"
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--score-only",
        action="store_true",
        help="no training: score the files in --out on the held-out scans now in the cache",
    )
    args = ap.parse_args(argv)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    tables = load_tables(args.cache, args.model)
    if not tables:
        print(
            f"no candidate tables in {args.cache / args.model}: run python -m src_training.fp_data first"
        )
        return 2
    seeds = tuple(int(s) for s in args.seeds.split(","))
    t0 = time.perf_counter()
    if args.score_only:
        report = rescore(tables, args.out)
    else:
        report = run_with_tqdm(
            iter_run(tables, args.out, seeds, log=lambda s: print(s, flush=True))
        )
    train_s = time.perf_counter() - t0
    held = [t.patches for t in tables if t.name in report["held_out_cases"] and len(t.y)]
    sample = np.concatenate(held) if held else np.full((64, 32, 32, 32), -800, np.int16)
    names = {
        "teacher": "3-D teacher",
        "baseline": "3-D student, baseline",
        "distilled": "3-D student, distilled",
    }
    rows = []
    for role, label in names.items():
        runs = [r for r in report["runs"] if r["role"] == role]
        if runs:
            rows.append(
                {
                    "model": label,
                    "params": runs[0]["params"],
                    "ms": ms_per_candidate(Path(runs[0]["path"]), sample),
                    "runs": [r["held_out"] for r in runs],
                    "seeds": [r["seed"] for r in runs],
                    "train_s": [r.get("train_s") for r in runs],
                }
            )
    rows += reference_rows(tables)
    groups = list(GROUPS)
    print()
    print(
        f"machine: {platform.machine()} {platform.system()}, torch {torch.__version__}, "
        f"{args.threads} torch thread(s), batch 64; "
        f"{'scoring' if args.score_only else 'training + scoring'} {train_s / 60:.1f} min"
    )
    print(f"trained on: {', '.join(report['train_cases'])}")
    print(f"held out: {', '.join(report['held_out_cases'])}")
    for g in groups:
        m = rows[0]["runs"][0][g]
        print(
            f"  {g}: {len(m['scans'])} scans, {m['nodules']} reference nodules, "
            f"{m['nodules_with_candidate']} of them with a U-Net candidate (the CPM ceiling)"
        )
    print()
    print(table(rows, groups))
    if args.json:
        for r in report["runs"]:
            r.pop("scores", None)
        doc = {
            "machine": platform.machine(),
            "torch": torch.__version__,
            "threads": args.threads,
            "train_cases": report["train_cases"],
            "held_out_cases": report["held_out_cases"],
            "rows": rows,
            "runs": report["runs"],
        }
        args.json.write_text(json.dumps(doc, indent=1))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
