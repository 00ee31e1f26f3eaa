"""Train the false-positive classifier (features -> boosted trees) and score it the way the field does.

Reads the candidate tables of :mod:`src_training.fp_data` (phantoms with true nodules; real chests
whose candidates off their marked lesions are real vessels and other anatomy) and:

1. scores it held out **by patient**: every real patient (its scan and its scans with inserted
   nodules) is scored by a classifier trained without it (leave-one-patient-out; the CC BY-NC
   scans never train), and the phantoms by a classifier trained on the other half of the seeds;
2. picks the operating point: the classifier score at which the out-of-patient predictions of the
   trainable real-anatomy scans give about 1 false positive per scan;
3. trains the final classifier on every trainable case and writes it, with its operating points,
   the training cases and the held-out metrics, as a verified file
   (:mod:`napari_lungkd.models.tree_ensemble`).

    python -m src_training.fp_classifier --cache data/fp_cache --out data/fp_classifier/student_fp.safetensors
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_lungkd.inference.candidate_features import FEATURE_NAMES
from napari_lungkd.scoring.froc import LUNA16_FP_RATES, froc_curve
from src_training.fp_data import CaseTable, load_tables

PARAMS = dict(
    max_iter=300, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=10, l2_regularization=1.0
)
"""HistGradientBoostingClassifier settings: small trees, slow learning, enough leaves per split
that a few dozen positives cannot be memorised."""
TARGET_FP_PER_SCAN = 1.0


def _xy(tables: list[CaseTable]):
    xs, ys = [], []
    for t in tables:
        keep = t.y >= 0
        xs.append(t.features[keep])
        ys.append(t.y[keep])
    if not xs:
        return np.zeros((0, len(FEATURE_NAMES))), np.zeros(0, int)
    return np.concatenate(xs), np.concatenate(ys)


def fit(tables: list[CaseTable], seed: int = 0):
    """A fitted HistGradientBoostingClassifier; the classes weigh the same in the loss (nodules are
    rare among candidates)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = _xy(tables)
    if len(np.unique(y)) < 2:
        raise ValueError("the training candidates need both nodules and false positives")
    w = np.where(y == 1, 0.5 / max((y == 1).mean(), 1e-9), 0.5 / max((y == 0).mean(), 1e-9))
    return HistGradientBoostingClassifier(random_state=seed, **PARAMS).fit(x, y, sample_weight=w)


def hits_and_false_positives(tables: list[CaseTable], scores: list[np.ndarray]):
    """Per-reference best scores (0 when missed) and false-positive scores, pooled."""
    hit_scores, fp_scores, n_refs = [], [], 0
    for t, s in zip(tables, scores):
        n_refs += t.n_references
        for j in range(t.n_references):
            on = t.ref_hit == j
            if on.any():
                hit_scores.append(float(s[on].max()))
        fp_scores.extend(s[(t.ref_hit < 0) & ~t.ignored].tolist())
    return np.asarray(hit_scores), np.asarray(fp_scores), n_refs


def operating_points(tables, scores, rates=LUNA16_FP_RATES) -> list[dict]:
    """For each FP-per-scan rate: the score threshold reaching it and the sensitivity there."""
    hits, fps, n_refs = hits_and_false_positives(tables, scores)
    curve = froc_curve(hits, fps, n_refs, len(tables))
    out = []
    for r in rates:
        thr = float(curve.threshold_at(r))
        sens = float((hits >= thr).sum() / n_refs) if n_refs else float("nan")
        out.append(
            {
                "fp_per_scan": float(r),
                "threshold": thr,
                "sensitivity": sens,
                "fp_per_scan_measured": float((fps >= thr).sum() / len(tables)),
            }
        )
    return out


def default_operating_point(tables, scores) -> dict:
    """The operating points of ``scores`` on the held-out real-anatomy scans that may train (real
    chests and their copies with inserted nodules: false positives per scan on real CT; the CC
    BY-NC scans never set anything; the phantoms where none of those hold a nodule) and the
    default: the threshold at :data:`TARGET_FP_PER_SCAN`. The one rule for every classifier file
    and for ``bench/fp_reduction.py``; ``{}`` where no scan holds a nodule."""
    idx = [i for i, t in enumerate(tables) if t.kind != "phantom" and t.trainable]
    if not sum(tables[i].n_references for i in idx):
        idx = list(range(len(tables)))
    if not idx or not sum(tables[i].n_references for i in idx):
        return {}
    ops = operating_points([tables[i] for i in idx], [scores[i] for i in idx])
    return {
        "default_threshold": next(o for o in ops if o["fp_per_scan"] == TARGET_FP_PER_SCAN)[
            "threshold"
        ],
        "operating_points": ops,
        "operating_points_from": [tables[i].name for i in idx],
    }


@dataclass
class HeldOut:
    """Scores of every case from a classifier that never saw its patient."""

    tables: list[CaseTable]
    scores: list[np.ndarray]
    trained_without: dict[str, list[str]]


def held_out_scores(tables: list[CaseTable], seed: int = 0, log=print) -> HeldOut:
    from napari_lungkd.models.tree_ensemble import from_sklearn

    real = [t for t in tables if t.kind in ("real", "inserted")]  # real anatomy, by patient
    phantoms = [t for t in tables if t.kind == "phantom"]
    half_a, half_b = phantoms[0::2], phantoms[1::2]
    scores: dict[str, np.ndarray] = {}
    without: dict[str, list[str]] = {}
    for patient in sorted({t.patient for t in real}):
        train = phantoms + [t for t in real if t.trainable and t.patient != patient]
        model = from_sklearn(fit(train, seed), FEATURE_NAMES)
        for t in real:
            if t.patient == patient:
                scores[t.name] = model.predict_proba(t.features) if len(t.features) else np.zeros(0)
                without[t.name] = [patient]
        log(f"held out patient {patient}: trained on {len(train)} cases")
    for test, train_half in ((half_b, half_a), (half_a, half_b)):
        train = train_half + [t for t in real if t.trainable]
        model = from_sklearn(fit(train, seed), FEATURE_NAMES)
        for t in test:
            scores[t.name] = model.predict_proba(t.features) if len(t.features) else np.zeros(0)
            without[t.name] = [u.name for u in test]
    order = [t for t in tables if t.name in scores]
    return HeldOut(order, [scores[t.name] for t in order], without)


def scan_scores(tables: list[CaseTable], scores: list[np.ndarray]):
    """Each case as a :class:`~napari_lungkd.scoring.hits.ScanScore` under ``scores``, for
    :func:`~napari_lungkd.scoring.froc.froc` (pooled FROC, CPM, bootstrap over scans)."""
    from napari_lungkd.scoring.hits import ScanScore

    out = []
    for t, s in zip(tables, scores):
        ref_scores, ref_cands, double = [], [], 0
        for j in range(t.n_references):
            idx = np.flatnonzero(t.ref_hit == j)
            if idx.size:
                best = int(idx[np.argmax(s[idx])])
                ref_scores.append(float(s[best]))
                ref_cands.append(best)
                double += idx.size - 1
            else:
                ref_scores.append(None)
                ref_cands.append(None)
        fp = (t.ref_hit < 0) & ~t.ignored
        out.append(
            ScanScore(
                name=t.name,
                n_candidates=len(s),
                reference_scores=tuple(ref_scores),
                reference_candidates=tuple(ref_cands),
                false_positive_scores=tuple(float(v) for v in s[fp]),
                n_ignored=int(t.ignored.sum()),
                n_double=int(double),
                nodule_dice=tuple(None for _ in ref_scores),
            )
        )
    return out


def scan_rows(held: HeldOut, threshold: float, mask_threshold: float = 0.5) -> list[dict]:
    """Per scan: candidates, the U-Net's own marks (candidates reaching its mask threshold) and
    false positives among them, and what is left after the classifier at ``threshold``."""
    rows = []
    p_max = FEATURE_NAMES.index("prob_max")
    for t, s in zip(held.tables, held.scores):
        fp = (t.ref_hit < 0) & ~t.ignored
        marked = t.features[:, p_max] >= mask_threshold if len(t.features) else np.zeros(0, bool)
        kept = s >= threshold
        found_before = sum(bool(((t.ref_hit == j) & marked).any()) for j in range(t.n_references))
        found_after = sum(bool(((t.ref_hit == j) & kept).any()) for j in range(t.n_references))
        rows.append(
            {
                "scan": t.name,
                "kind": t.kind,
                "trainable": t.trainable,
                "candidates": int(len(s)),
                "fp_before": int((fp & marked).sum()),
                "fp_after": int((fp & kept).sum()),
                "nodules": t.n_references,
                "found_before": found_before,
                "found_after": found_after,
            }
        )
    return rows


def summary(held: HeldOut, threshold: float) -> dict:
    out = {}
    for kind in ("phantom", "real", "inserted"):
        idx = [i for i, t in enumerate(held.tables) if t.kind == kind]
        tabs = [held.tables[i] for i in idx]
        if not tabs:
            continue
        sc = [held.scores[i] for i in idx]
        hits, fps, n_refs = hits_and_false_positives(tabs, sc)
        curve = froc_curve(hits, fps, n_refs, len(tabs))
        sens = (
            curve.sensitivity_at(LUNA16_FP_RATES)
            if n_refs
            else np.full(len(LUNA16_FP_RATES), np.nan)
        )
        rows = scan_rows(HeldOut(tabs, sc, {}), threshold)
        before = sum(r["fp_before"] for r in rows)
        after = sum(r["fp_after"] for r in rows)
        out[kind] = {
            "scans": len(tabs),
            "nodules": n_refs,
            "froc_sensitivity": {
                str(r): (None if np.isnan(v) else round(float(v), 4))
                for r, v in zip(LUNA16_FP_RATES, sens)
            },
            "cpm": None if not n_refs else round(float(np.mean(sens)), 4),
            "fp_per_scan_before": round(before / len(tabs), 2),
            "fp_per_scan_after": round(after / len(tabs), 2),
            "fp_reduction": None if not before else round(1 - after / before, 4),
        }
    return out


def train_and_export(tables: list[CaseTable], out: Path, seed: int = 0, log=print) -> dict:
    from napari_lungkd.models.tree_ensemble import from_sklearn, save_tree_ensemble

    held = held_out_scores(tables, seed, log)
    points = default_operating_point(held.tables, held.scores)  # out-of-patient scores
    default, ops = points["default_threshold"], points["operating_points"]
    report = {
        "default_threshold": default,
        "operating_points": ops,
        "held_out": summary(held, default),
        "scans": scan_rows(held, default),
    }
    final_tables = [t for t in tables if t.trainable]
    model = from_sklearn(
        fit(final_tables, seed),
        FEATURE_NAMES,
        {
            "default_threshold": default,
            "operating_points": ops,
            "training": {
                "kind": "HistGradientBoostingClassifier",
                "params": PARAMS,
                "seed": seed,
                "unet": "student (bundled)",
            },
            "data_split": {
                "train_cases": [t.name for t in final_tables],
                "not_trained_on": [t.name for t in tables if not t.trainable],
                "reference": "phantom truth; LIDC consensus (LUNA16 rule); marked lesions ignored",
            },
            "metrics": report["held_out"],
        },
    )
    save_tree_ensemble(out, model)
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path("data/fp_cache"))
    ap.add_argument("--model", default="student")
    ap.add_argument("--out", type=Path, default=Path("data/fp_classifier/student_fp.safetensors"))
    ap.add_argument("--report", type=Path, default=None, help="write the held-out report as JSON")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    tables = load_tables(args.cache, args.model)
    if not tables:
        raise SystemExit(
            f"no candidate tables in {args.cache / args.model}: run python -m src_training.fp_data first"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = train_and_export(tables, args.out, args.seed)
    text = json.dumps(report, indent=1)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
    print(json.dumps(report["held_out"], indent=1))
    print(
        f"{'scan':24} {'cand':>5} {'FP before':>9} {'FP after':>8} {'nodules found before/after':>27}"
    )
    for r in report["scans"]:
        print(
            f"{r['scan']:24} {r['candidates']:5d} {r['fp_before']:9d} {r['fp_after']:8d} {r['found_before']:>12}/{r['found_after']}/{r['nodules']}"
        )
    print(f"wrote {args.out} (operating point {report['default_threshold']:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
