"""FROC and CPM pooled over scans, as LUNA16's ``noduleCADEvaluationLUNA16.py`` computes them.

Each scan is scored by :func:`napari_lungkd.scoring.hits.score_scan` (the hit rule). Pooled over
scans, every found reference enters the curve once, with the highest score of its candidates, and
every false positive with its score; a missed reference enters only the denominator. For each
distinct score ``t`` (from the highest down), the operating point is

* sensitivity = references found by a candidate scoring ``>= t`` / all references;
* false positives per scan = false positives scoring ``>= t`` / number of scans (scans without a
  reference count in the denominator and with their false positives).

The curve starts at ``(0, 0)``. The sensitivity at a false-positive rate ``r`` is LUNA16's
``np.interp`` over these points in threshold order: the sensitivity of the most permissive
threshold whose FP rate is ``<= r``, except where tied scores mix hits and false positives
(a diagonal segment, interpolated linearly). Beyond the last point it stays at the last
sensitivity. CPM (the competition performance metric) is the mean sensitivity at 1/8, 1/4, 1/2,
1, 2, 4 and 8 false positives per scan.

The bootstrap (LUNA16's ``computeFROC_bootstrap``) draws scans with replacement, as many as there
are, ``n`` times with a seeded generator; the bounds at confidence ``c`` are the sorted values at
``floor((1 - c) / 2 * n)`` and ``floor((1 + c) / 2 * n)``, as LUNA16 takes them. Draws that
happen to hold no reference (sensitivity undefined) are left out and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_lungkd.scoring.hits import ScanCase, ScanScore, score_scan

LUNA16_FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
BAND_FP_RATES = tuple(float(v) for v in np.geomspace(0.125, 8.0, 49))
"""Where the bootstrap band is kept for the plot (log-spaced from 1/8 to 8 per scan)."""


@dataclass(frozen=True)
class FrocCurve:
    """Operating points in threshold order: ``fp_per_scan[k]``, ``sensitivity[k]`` for scores
    ``>= threshold[k]`` (point 0 is ``(0, 0)`` at ``threshold = inf``)."""

    fp_per_scan: np.ndarray
    sensitivity: np.ndarray
    threshold: np.ndarray

    def sensitivity_at(self, rates) -> np.ndarray:
        """Sensitivity at each false-positive rate (LUNA16's ``np.interp``, module doc)."""
        return _interp(np.asarray(rates, dtype=float), self.fp_per_scan, self.sensitivity)

    def threshold_at(self, rate: float) -> float:
        """The lowest score threshold whose false positives per scan stay ``<= rate``
        (keep candidates scoring ``>=`` it; ``inf`` when even the top score costs more)."""
        i = int(np.searchsorted(self.fp_per_scan, rate, side="right")) - 1
        return float(self.threshold[max(i, 0)])

    def corners(self) -> FrocCurve:
        """The same curve without points in the middle of a straight run (for JSON and plots)."""
        x, y = self.fp_per_scan, self.sensitivity
        if x.size <= 2:
            return self
        keep = np.r_[True, (np.diff(x, 2) != 0) | (np.diff(y, 2) != 0), True]
        return FrocCurve(x[keep], y[keep], self.threshold[keep])


def _interp(rates: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    # the last point with FP rate <= r, then linear to the next point (whose rate is > r)
    i = np.searchsorted(xp, rates, side="right") - 1
    i = np.clip(i, 0, xp.size - 1)
    out = fp[i].astype(float)
    j = i + 1
    inner = j < xp.size
    if inner.any():
        a, b = i[inner], j[inner]
        frac = (rates[inner] - xp[a]) / (xp[b] - xp[a])
        out[inner] = fp[a] + (fp[b] - fp[a]) * frac
    return out


def _run_ends(s_sorted: np.ndarray) -> np.ndarray:
    """Index of the last entry of each run of equal scores (one operating point per score)."""
    if not s_sorted.size:
        return np.zeros(0, dtype=np.int64)
    return np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1].astype(np.int64)


def froc_curve(hit_scores, fp_scores, n_references: int, n_scans: int) -> FrocCurve:
    """The pooled FROC operating points (module doc) from found references' best scores and
    false positives' scores."""
    hit = np.asarray(hit_scores, dtype=float).ravel()
    neg = np.asarray(fp_scores, dtype=float).ravel()
    if n_scans <= 0:
        raise ValueError("a FROC needs at least one scan")
    s = np.r_[hit, neg]
    y = np.r_[np.ones(hit.size), np.zeros(neg.size)]
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = _run_ends(s)
    tp, fp = np.cumsum(y)[last], np.cumsum(1 - y)[last]
    sens = tp / n_references if n_references else np.full(tp.shape, np.nan)
    return FrocCurve(
        fp_per_scan=np.r_[0.0, fp / n_scans],
        sensitivity=np.r_[0.0 if n_references else np.nan, sens],
        threshold=np.r_[np.inf, s[last]],
    )


@dataclass(frozen=True)
class Bootstrap:
    """LUNA16's bootstrap over scans: mean and bounds of the sensitivities and of the CPM."""

    samples: int
    used: int
    """Draws with at least one reference (the others have no sensitivity)."""
    seed: int
    confidence: float
    sensitivity_mean: tuple[float, ...]
    sensitivity_lower: tuple[float, ...]
    sensitivity_upper: tuple[float, ...]
    cpm_mean: float
    cpm_lower: float
    cpm_upper: float
    band_rates: tuple[float, ...]
    band_mean: tuple[float, ...]
    band_lower: tuple[float, ...]
    band_upper: tuple[float, ...]

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _bounds(values: np.ndarray, confidence: float):
    v = np.sort(values, axis=0)
    n = v.shape[0]
    pz = (1.0 - confidence) / 2.0
    lo = v[min(int(math.floor(pz * n)), n - 1)]
    hi = v[min(int(math.floor((1.0 - pz) * n)), n - 1)]
    return v.mean(axis=0), lo, hi


def _entries(scores: Sequence[ScanScore]):
    """Pooled scores (found references' best, false positives), sorted from the highest, with
    1.0 for a hit / 0.0 for a false positive, and the index of the scan each comes from."""
    s, y, owner = [], [], []
    for k, sc in enumerate(scores):
        hits = [v for v in sc.reference_scores if v is not None]
        s += hits + list(sc.false_positive_scores)
        y += [1.0] * len(hits) + [0.0] * len(sc.false_positive_scores)
        owner += [k] * (len(hits) + len(sc.false_positive_scores))
    s = np.asarray(s, dtype=float)
    order = np.argsort(-s, kind="stable")
    return s[order], np.asarray(y, dtype=float)[order], np.asarray(owner, dtype=np.int64)[order]


def bootstrap_froc(
    scores: Sequence[ScanScore],
    fp_rates=LUNA16_FP_RATES,
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Bootstrap | None:
    """Bootstrap the pooled FROC over scans (module doc); None when no draw holds a reference."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), not {confidence}")
    if samples < 1 or not scores:
        return None
    rng = np.random.default_rng(seed)
    n = len(scores)
    n_refs = np.array([sc.n_references for sc in scores])
    # every entry once, sorted by score; a draw weighs each by how often its scan was drawn
    s, y, owner = _entries(scores)
    last = _run_ends(s)
    rates = np.asarray(fp_rates, dtype=float)
    band = np.asarray(BAND_FP_RATES)
    at_rates, at_band = [], []
    for _ in range(samples):
        counts = np.bincount(rng.integers(n, size=n), minlength=n)
        total = int(counts @ n_refs)
        if total == 0:
            continue
        w = counts[owner]
        xp = np.r_[0.0, np.cumsum(w * (1.0 - y))[last] / n]
        sp = np.r_[0.0, np.cumsum(w * y)[last] / total]
        at_rates.append(_interp(rates, xp, sp))
        at_band.append(_interp(band, xp, sp))
    if not at_rates:
        return None
    r = np.array(at_rates)
    mean, lo, hi = _bounds(r, confidence)
    cpm_mean, cpm_lo, cpm_hi = _bounds(r.mean(axis=1), confidence)
    b_mean, b_lo, b_hi = _bounds(np.array(at_band), confidence)

    def tup(a):
        return tuple(float(v) for v in a)

    return Bootstrap(
        samples=int(samples),
        used=len(at_rates),
        seed=int(seed),
        confidence=float(confidence),
        sensitivity_mean=tup(mean),
        sensitivity_lower=tup(lo),
        sensitivity_upper=tup(hi),
        cpm_mean=float(cpm_mean),
        cpm_lower=float(cpm_lo),
        cpm_upper=float(cpm_hi),
        band_rates=tup(band),
        band_mean=tup(b_mean),
        band_lower=tup(b_lo),
        band_upper=tup(b_hi),
    )


def _none_if_nan(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


@dataclass(frozen=True)
class FrocResult:
    """Pooled FROC of a set of scans, CPM, the bootstrap, and Dice of the found nodules."""

    scans: tuple[ScanScore, ...]
    curve: FrocCurve
    fp_rates: tuple[float, ...]
    sensitivities: tuple[float | None, ...]
    """Sensitivity at each of ``fp_rates`` (None when no scan holds a reference)."""
    cpm: float | None
    bootstrap: Bootstrap | None
    rule: str

    @property
    def n_scans(self) -> int:
        return len(self.scans)

    @property
    def n_references(self) -> int:
        return sum(s.n_references for s in self.scans)

    @property
    def n_found(self) -> int:
        """References hit by any candidate (at the lowest threshold)."""
        return sum(s.n_found for s in self.scans)

    @property
    def n_missed(self) -> int:
        return self.n_references - self.n_found

    @property
    def n_false_positives(self) -> int:
        return sum(s.n_false_positives for s in self.scans)

    @property
    def n_ignored(self) -> int:
        return sum(s.n_ignored for s in self.scans)

    def dice_summary(self, threshold: float | None = None) -> dict:
        """Dice of the found nodules, kept apart from the misses.

        ``threshold``: count a nodule found only when its best candidate scores at least this
        (None: any candidate). Nodules found without masks to compare add to ``found`` only.
        """
        t = -np.inf if threshold is None else float(threshold)
        found, dices = 0, []
        for sc in self.scans:
            for s, d in zip(sc.reference_scores, sc.nodule_dice):
                if s is not None and s >= t:
                    found += 1
                    if d is not None:
                        dices.append(d)
        return {
            "threshold": threshold,
            "found": found,
            "missed": self.n_references - found,
            "with_masks": len(dices),
            "mean_dice": float(np.mean(dices)) if dices else None,
            "median_dice": float(np.median(dices)) if dices else None,
        }

    def to_dict(self, curve: bool = True) -> dict:
        """A JSON-ready document (the curve's straight runs reduced to their corners)."""
        out = {
            "scans": self.n_scans,
            "references": self.n_references,
            "found": self.n_found,
            "missed": self.n_missed,
            "false_positives": self.n_false_positives,
            "ignored": self.n_ignored,
            "hit_rule": self.rule,
            "fp_per_scan": list(self.fp_rates),
            "sensitivity": list(self.sensitivities),
            "cpm": self.cpm,
            "dice": self.dice_summary(),
            "bootstrap": self.bootstrap.to_dict() if self.bootstrap else None,
            "per_scan": [s.to_dict() for s in self.scans],
        }
        if curve:
            c = self.curve.corners()
            out["curve"] = {
                "fp_per_scan": [float(v) for v in c.fp_per_scan],
                "sensitivity": [_none_if_nan(v) for v in c.sensitivity],
                "threshold": [float(v) if np.isfinite(v) else None for v in c.threshold],
            }
        return out

    def counts(self) -> str:
        return (
            f"{self.n_scans} scan{'s' * (self.n_scans != 1)}, {self.n_references} "
            f"nodule{'s' * (self.n_references != 1)} ({self.n_found} found at any "
            f"score, {self.n_missed} missed), {self.n_false_positives} false positives, "
            f"{self.n_ignored} on irrelevant findings"
        )

    def text(self) -> str:
        """A few lines for the terminal: sensitivities at the FP rates, CPM, Dice."""
        head = self.counts()
        rows = "  ".join(
            f"{r:g}: {'-' if s is None else f'{s:.3f}'}"
            for r, s in zip(self.fp_rates, self.sensitivities)
        )
        cpm = "-" if self.cpm is None else f"{self.cpm:.3f}"
        if self.bootstrap is not None:
            b = self.bootstrap
            cpm += f" ({b.confidence:.0%} CI {b.cpm_lower:.3f}-{b.cpm_upper:.3f})"
        d = self.dice_summary()
        dice_line = (
            f"Dice of found nodules: mean {d['mean_dice']:.3f}, median {d['median_dice']:.3f} "
            f"(n={d['with_masks']}); missed: {d['missed']}"
            if d["mean_dice"] is not None
            else f"Dice of found nodules: - ; missed: {d['missed']}"
        )
        return f"{head}\nsensitivity at FP/scan  {rows}\nCPM {cpm}\n{dice_line}"

    def table(self, threshold: float | None = None) -> str:
        """Sensitivity at each FP rate and the CPM (with the bootstrap interval where there is
        one), the counts, and Dice of the nodules found at ``threshold`` (None: any score)."""
        b = self.bootstrap
        lo = [*b.sensitivity_lower, b.cpm_lower] if b else []
        hi = [*b.sensitivity_upper, b.cpm_upper] if b else []
        names = [fp_rate_label(r) for r in self.fp_rates] + ["CPM"]
        ci = f"  {b.confidence:.0%} CI" if b else ""
        lines = [f"  {'FP/scan':<8} {'sensitivity':>11}{ci}"]
        for k, (name, v) in enumerate(zip(names, [*self.sensitivities, self.cpm])):
            text = f"  {name:<8} {'-' if v is None else f'{v:.3f}':>11}"
            lines.append(text + (f"  {lo[k]:.3f}-{hi[k]:.3f}" if b else ""))
        d = self.dice_summary(threshold)
        at = "any score" if threshold is None else f"score >= {threshold:.3f}"
        dice = "-" if d["mean_dice"] is None else f"mean {d['mean_dice']:.3f} (n={d['with_masks']})"
        missed = f"missed: {d['missed']}"
        lines += [f"  {self.counts()}", f"  Dice of found nodules at {at}: {dice}; {missed}"]
        return "\n".join(lines)


def fp_rate_label(rate: float) -> str:
    """``1/8`` for 0.125, ``2`` for 2.0: false positives per scan as LUNA16 labels them."""
    if 0 < rate < 1 and abs(1 / rate - round(1 / rate)) < 1e-9:
        return f"1/{round(1 / rate)}"
    return f"{rate:g}"


def froc(
    scans: Sequence[ScanCase | ScanScore],
    fp_rates=LUNA16_FP_RATES,
    rule: str = "auto",
    bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> FrocResult:
    """Score each scan (if not scored yet) with ``rule`` and pool them into a FROC (module doc).

    ``bootstrap``: number of resamples over scans (0: none).
    """
    scores = tuple(s if isinstance(s, ScanScore) else score_scan(s, rule=rule) for s in scans)
    if not scores:
        raise ValueError("a FROC needs at least one scan")
    rates = tuple(float(r) for r in fp_rates)
    if not rates or any(not r > 0 for r in rates):
        raise ValueError(f"fp_rates must be positive numbers, not {fp_rates}")
    n_refs = sum(s.n_references for s in scores)
    curve = froc_curve(
        [v for s in scores for v in s.reference_scores if v is not None],
        [v for s in scores for v in s.false_positive_scores],
        n_refs,
        len(scores),
    )
    sens = curve.sensitivity_at(rates) if n_refs else None
    return FrocResult(
        scans=scores,
        curve=curve,
        fp_rates=rates,
        sensitivities=tuple(float(v) for v in sens) if sens is not None else (None,) * len(rates),
        cpm=float(np.mean(sens)) if sens is not None else None,
        bootstrap=bootstrap_froc(scores, rates, bootstrap, seed, confidence) if bootstrap else None,
        rule=rule,
    )
