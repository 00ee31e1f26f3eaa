"""The second stage: score every candidate with the false-positive classifier, keep those at the
operating point, and make them the nodules (one definition for the table, the mask and the scores).

The classifier of a U-Net model ``<name>`` is the file ``<name>_fp.safetensors`` (boosted
trees, :mod:`~napari_lungkd.models.tree_ensemble`, or a 3-D CNN,
:mod:`~napari_lungkd.inference.patch_classifier`: its header says which), looked up in the user's weights folder, then in the
package's bundled weights. Its header holds the operating points measured on held-out scans
(false positives per scan and sensitivity at each score threshold) and the default one.

Without a classifier (none found, or ``classifier="off"``) the nodules are the components of the
U-Net mask above the model's threshold, as before; either way the mask is labelled: nodule ``i``
of the table is label ``i + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from napari_lungkd.errors import WeightsError
from napari_lungkd.inference.candidate_features import FEATURE_NAMES
from napari_lungkd.inference.candidates import Candidates, find_candidates
from napari_lungkd.inference.nodules import label_nodules

CLASSIFIER_SUFFIX = "_fp.safetensors"


def find_classifier(model_name: str) -> Path | None:
    """The classifier file of ``model_name``: user weights folder, then bundled; None if neither."""
    from napari_lungkd.models.weights import BUNDLED_DIR, user_weights_dir

    for folder in (user_weights_dir(), BUNDLED_DIR):
        path = folder / f"{model_name}{CLASSIFIER_SUFFIX}"
        if path.is_file():
            return path
    return None


def load_classifier(model_name: str, choice="auto"):
    """The :class:`~napari_lungkd.models.tree_ensemble.TreeEnsemble` that ``choice`` names:
    ``"auto"`` (the model's own if there is one, else None), ``"off"``/None (none) or a path."""
    from napari_lungkd.models.tree_ensemble import load_tree_ensemble

    if choice in (None, "off"):
        return None
    if choice == "auto":
        path = find_classifier(model_name)
        if path is None:
            return None
    else:
        path = Path(choice).expanduser()
        if not path.is_file():
            raise WeightsError(f"Classifier file {path} does not exist.")
    if _file_kind(path) == "cnn3d":
        from napari_lungkd.inference.patch_classifier import load_patch_classifier

        return load_patch_classifier(path)
    return load_tree_ensemble(path, expected_features=FEATURE_NAMES)


def _file_kind(path: Path) -> str | None:
    """The ``kind`` a classifier file's header claims (trees or 3-D CNN), read without checks:
    the loader of that kind checks everything and refuses what is not one."""
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return json.loads((f.metadata() or {}).get("lungkd") or "{}").get("kind")
    except Exception:  # noqa: BLE001 - unreadable: the tree loader says so in one sentence
        return None


def candidate_scores(classifier, cands: Candidates, hu, spacing_mm) -> np.ndarray:
    """Nodule probability of each candidate: from its features (trees) or its 3-D patch (CNN)."""
    if not len(cands):
        return np.zeros(0)
    if hasattr(classifier, "score"):
        return np.asarray(classifier.score(cands, hu, spacing_mm), dtype=np.float64)
    return classifier.predict_proba(cands.matrix())


@dataclass(frozen=True, eq=False)
class Triage:
    """The candidates of one CT with their classifier scores and the operating point applied."""

    candidates: Candidates
    scores: np.ndarray
    """Nodule probability per candidate (same order as ``candidates.items``)."""
    threshold: float
    """The operating point: candidates scoring at least this are nodules."""
    expected: dict | None = None
    """The held-out operating point nearest the threshold (fp_per_scan, sensitivity), if known."""

    @property
    def kept(self) -> np.ndarray:
        return self.scores >= self.threshold

    def to_dict(self) -> dict:
        return {
            "n_candidates": len(self.candidates),
            "n_kept": int(self.kept.sum()),
            "operating_point": round(float(self.threshold), 6),
            "candidate_threshold": self.candidates.threshold,
            "expected_at_operating_point": self.expected,
        }


def nearest_operating_point(classifier, threshold: float) -> dict | None:
    ops = classifier.operating_points
    if not ops:
        return None
    best = min(ops, key=lambda o: abs(float(o["threshold"]) - threshold))
    return {k: best[k] for k in ("fp_per_scan", "sensitivity", "threshold") if k in best}


def describe_classifier(classifier) -> str:
    """One line for a user: which classifier runs and what its default operating point gave on the
    scans it was measured on (held out)."""
    meta = classifier.metadata
    kind = "3-D CNN" if meta.get("kind") == "cnn3d" else "boosted trees"
    if meta.get("role"):
        kind += f" ({meta['role']})"
    name = Path(str(meta.get("path", ""))).name
    sha = str(meta.get("file_sha256") or "")[:12]
    thr = classifier.default_threshold
    text = " ".join(p for p in (kind, name, sha) if p) + f", operating point {thr:.3f}"
    op = nearest_operating_point(classifier, thr)
    if op and "sensitivity" in op:
        text += (
            f" (~{op['fp_per_scan']:g} false positive per scan, sensitivity "
            f"{op['sensitivity']:.2f} on its held-out scans)"
        )
    return text


def triage(
    probability, hu, spacing_mm, classifier, operating_point=None, candidate_threshold=None
) -> Triage:
    """Candidates of ``probability`` scored by ``classifier``; ``operating_point`` (a score
    threshold) defaults to the classifier's own (about 1 false positive per scan on held-out scans)."""
    kw = {} if candidate_threshold is None else {"threshold": float(candidate_threshold)}
    cands = find_candidates(np.asarray(probability, dtype=np.float32), hu, spacing_mm, **kw)
    scores = candidate_scores(classifier, cands, hu, spacing_mm)
    thr = float(classifier.default_threshold if operating_point is None else operating_point)
    return Triage(cands, scores, thr, nearest_operating_point(classifier, thr))


def nodules_and_mask(
    mask, ct, hu, probability, min_volume_mm3, triage_result: Triage | None = None
):
    """The nodule table and its labelled mask (uint16, nodule ``i`` -> ``i + 1``).

    With a triage: the kept candidates, best score first, each with its ``score``; without: the
    components of ``mask`` of at least ``min_volume_mm3``, largest first."""
    ct_geom = ct if hasattr(ct, "index_to_lps") else None
    if triage_result is None:
        return label_nodules(
            mask,
            ct.spacing_mm,
            hu=hu,
            probability=probability,
            min_volume_mm3=min_volume_mm3,
            ct=ct_geom,
        )
    t = triage_result
    kept_labels = [c.label for c, k in zip(t.candidates.items, t.kept) if k]
    kept_mask = (
        np.isin(t.candidates.labels, kept_labels) if kept_labels else np.zeros(mask.shape, bool)
    )
    found, labelled = label_nodules(
        kept_mask, ct.spacing_mm, hu=hu, probability=probability, min_volume_mm3=0.0, ct=ct_geom
    )
    score_of = dict(zip((c.label for c in t.candidates.items), t.scores))
    scored = []
    for nd in found:  # a nodule of several kept candidates (pieces) scores as its best piece
        z0, y0, x0, z1, y1, x1 = nd.bbox
        box = t.candidates.labels[z0:z1, y0:y1, x0:x1][labelled[z0:z1, y0:y1, x0:x1] == nd.label]
        scored.append(replace(nd, score=max(float(score_of[int(c)]) for c in np.unique(box))))
    order = sorted(range(len(scored)), key=lambda i: -scored[i].score)
    relabel = np.zeros(len(found) + 1, dtype=np.uint16)
    nodules = []
    for new, i in enumerate(order, start=1):
        relabel[found[i].label] = new
        nodules.append(replace(scored[i], label=new))
    return nodules, relabel[labelled]
