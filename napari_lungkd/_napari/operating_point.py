"""The operating point after a run: which of a result's scored candidates are shown as nodules.

Every result carries its candidates with a score (:func:`candidate_scores`):

* with the false-positive classifier (``seg.triage``): every 3-D candidate and its classifier
  score; a candidate is a nodule when its score passes the operating point. A new point makes the
  table and the labelled mask again with the core's own
  :func:`~napari_lungkd.inference.fp_reduction.nodules_and_mask` (one definition of a nodule);
* without one: the candidates are the run's nodules (the U-Net mask's components) and the score is
  the U-Net's highest probability inside each; a higher point drops rows and their labels, a lower
  one brings them back, down to the run's probability threshold (below it there is nothing).

Nothing is run again: the run's own result is kept and every point is applied to it
(:func:`at_operating_point`). A mask the user edited keeps the edits (:func:`carry_edits`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

CLASSIFIER_SCORE, PROBABILITY_SCORE = "classifier score", "U-Net max probability"


@dataclass(frozen=True, eq=False)
class CandidateScores:
    """Every candidate of one run: centre (voxel ``z, y, x``), score, and the range of points."""

    centres_zyx: np.ndarray
    """float ``(n, 3)``."""
    scores: np.ndarray
    """float ``(n,)``, in the order of ``centres_zyx``."""
    score_name: str
    """:data:`CLASSIFIER_SCORE` or :data:`PROBABILITY_SCORE`."""
    default: float
    """The run's own operating point (where its result was cut)."""
    lowest: float
    """The lowest point that can be set (the U-Net threshold without a classifier, else 0)."""
    diameters_mm: np.ndarray | None = None
    """Longest diameter of each candidate (for drawing it), where known."""

    def __len__(self) -> int:
        return int(self.scores.size)

    def kept(self, threshold: float) -> np.ndarray:
        return self.scores >= float(threshold)

    def clamp(self, threshold: float) -> float:
        return float(min(max(float(threshold), self.lowest), 1.0))


def candidate_scores(seg) -> CandidateScores:
    """The scored candidates of ``seg``, the run's own result (module doc)."""
    triage = getattr(seg, "triage", None)
    if triage is not None:
        items = triage.candidates.items
        centres = np.array([c.centroid_zyx for c in items], dtype=float).reshape(-1, 3)
        scores = np.asarray(triage.scores, dtype=float).ravel()
        sizes = np.array([c.features.get("longest_diameter_mm", np.nan) for c in items], float)
        point = float(triage.threshold)
        return CandidateScores(centres, scores, CLASSIFIER_SCORE, point, 0.0, sizes)
    nodules = list(seg.nodules)
    centres = np.array([n.centroid_zyx for n in nodules], dtype=float).reshape(-1, 3)
    scores = np.array(
        [1.0 if n.max_probability is None else float(n.max_probability) for n in nodules],
        dtype=float,
    )
    sizes = np.array([n.diameter_mm for n in nodules], dtype=float)
    threshold = float(seg.provenance.threshold)
    return CandidateScores(centres, scores, PROBABILITY_SCORE, threshold, threshold, sizes)


def _relabel(mask: np.ndarray, kept_labels: list[int]) -> np.ndarray:
    """uint16 mask where ``kept_labels[i]`` becomes ``i + 1`` and every other label 0."""
    lut = np.zeros(int(mask.max(initial=0)) + 1, dtype=np.uint16)
    for new, old in enumerate(kept_labels, start=1):
        if 0 < old < lut.size:
            lut[old] = new
    return lut[mask]


def at_operating_point(seg, threshold: float, ct, classifier=None):
    """``seg`` (the run's own result) with only the candidates scoring ``>= threshold`` as
    nodules: a new Segmentation (table, labelled mask, provenance), the probability unchanged.

    ``classifier`` (the run's, when known) gives the held-out numbers nearest the point."""
    triage = getattr(seg, "triage", None)
    if triage is None:
        kept = [n for n in seg.nodules if (n.max_probability or 1.0) >= threshold]
        mask = _relabel(np.asarray(seg.mask), [n.label for n in kept])
        nodules = [replace(n, label=i) for i, n in enumerate(kept, start=1)]
        return replace(seg, mask=mask, nodules=nodules)
    from napari_lungkd.inference.fp_reduction import nearest_operating_point, nodules_and_mask

    expected = nearest_operating_point(classifier, threshold) if classifier else None
    moved = replace(triage, threshold=float(threshold), expected=expected or triage.expected)
    nodules, mask = nodules_and_mask(seg.mask, ct, ct.hu, seg.probability, 0.0, moved)
    prov = seg.provenance
    classifier_info = dict(prov.classifier or {})
    classifier_info.update(moved.to_dict())
    return replace(
        seg,
        mask=mask,
        nodules=nodules,
        triage=moved,
        provenance=replace(prov, classifier=classifier_info),
    )


def shown_provenance(seg, scores: CandidateScores, threshold: float) -> dict:
    """``seg``'s provenance as a dict, with the operating point the user set after the run."""
    prov = seg.provenance.to_dict()
    prov["operating_point_shown"] = {
        "score": scores.score_name,
        "threshold": round(float(threshold), 6),
        "run_default": round(scores.default, 6),
        "n_candidates": len(scores),
        "n_kept": int(scores.kept(threshold).sum()),
    }
    return prov


def carry_edits(shown, own, new) -> np.ndarray:
    """The new model mask with the user's edits of the shown one carried over.

    ``shown``: the editable layer's data; ``own``: the model's mask it was edited from; ``new``:
    the model's mask at the new operating point. Voxels the user erased stay erased; voxels the
    user painted stay painted (in the edit label, from
    :data:`napari_lungkd._napari.result_layers.EDIT_LABEL`)."""
    from napari_lungkd._napari.result_layers import EDIT_LABEL

    shown, own = np.asarray(shown), np.asarray(own)
    out = np.array(new, copy=True)
    if shown.shape != own.shape or shown.shape != out.shape:
        return out
    edited = shown != own
    if not edited.any():
        return out
    if not np.issubdtype(out.dtype, np.integer) or np.iinfo(out.dtype).max < EDIT_LABEL:
        out = out.astype(np.uint16)
    out[edited & (shown == 0)] = 0
    out[edited & (shown != 0)] = EDIT_LABEL
    return out


def describe(scores: CandidateScores, threshold: float, expected: dict | None = None) -> str:
    """One line under the control: how many candidates pass, and the held-out numbers."""
    n, k = len(scores), int(scores.kept(threshold).sum())
    text = (
        f"{k} of {n} candidate{'s' if n != 1 else ''} pass ({scores.score_name} ≥ {threshold:.3f})"
    )
    if expected and expected.get("fp_per_scan") is not None:
        sens = expected.get("sensitivity")
        text += f"; on validation scans ≈{float(expected['fp_per_scan']):.2g} FP/scan"
        if sens is not None:
            text += f", sensitivity {float(sens):.2f}"
    return text
