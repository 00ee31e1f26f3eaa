"""Scored candidates against reference nodules on one scan: the hit rule of LUNA16.

A scan (:class:`ScanCase`) holds scored candidates, reference nodules and *irrelevant findings*
(marks that are neither to be found nor to be punished), all placed by their centre in voxel
``(z, y, x)`` of one grid, with the grid's ``spacing_mm`` to measure distances in mm. Masks are
optional: a label volume per kind, each object naming its label.

The hit rule (:func:`score_scan`), as LUNA16's ``noduleCADEvaluationLUNA16.py``:

* a candidate **hits** a reference nodule when its mask overlaps the nodule's mask (one shared
  voxel is enough), or, where either mask is not given, when its centre lies *strictly* within the
  nodule's radius (``distance < diameter / 2``: LUNA16's ``dist < radiusSquared``).
  ``rule="centre"`` always uses the centre, ``rule="overlap"`` always the masks;
* a reference hit by several candidates is found once, with the highest score; the other
  candidates on it are neither true nor false positives (LUNA16's "double detections ignored").
  A candidate on two references counts for both (LUNA16 does the same, with a warning);
* a candidate on no reference but on an irrelevant finding (same rule, with the finding's radius)
  is neither a hit nor a false positive; every other candidate is a false positive.

Dice of a found nodule compares the mask of its best candidate with the nodule's mask
(:func:`napari_lungkd.scoring.metrics.dice`, on the two objects' joint bounding box); it is
``None`` for a missed nodule or where a mask is not known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_lungkd.scoring.metrics import dice

RULES = ("auto", "centre", "overlap")


@dataclass(frozen=True)
class ScoredCandidate:
    """One scored detection: its centre (voxel ``z, y, x``), score, and optional mask label."""

    centre_zyx: tuple[float, float, float]
    score: float
    label: int | None = None
    """Its label in the scan's ``candidate_labels`` volume (None: no mask)."""


@dataclass(frozen=True)
class Reference:
    """One nodule to be found: centre (voxel ``z, y, x``), diameter in mm, optional mask label."""

    centre_zyx: tuple[float, float, float]
    diameter_mm: float
    label: int | None = None
    """Its label in the scan's ``reference_labels`` volume (None: no mask)."""
    name: str = ""

    @property
    def radius_mm(self) -> float:
        return self.diameter_mm / 2.0


@dataclass(frozen=True)
class IrrelevantFinding:
    """A mark that a candidate may hit without being a hit or a false positive."""

    centre_zyx: tuple[float, float, float]
    radius_mm: float
    label: int | None = None
    """Its label in the scan's ``irrelevant_labels`` volume (None: a point with a radius)."""
    kind: str = ""
    """Why it is irrelevant (e.g. ``"non_nodule"``, ``"small_nodule"``, ``"below_consensus"``)."""


def _labels(volume, what: str, shape=None) -> np.ndarray | None:
    if volume is None:
        return None
    v = np.asarray(volume)
    if v.ndim != 3 or not (np.issubdtype(v.dtype, np.integer) or v.dtype == bool):
        raise ValueError(f"{what} must be a 3-D integer label volume, not {v.dtype} {v.shape}")
    if shape is not None and v.shape != shape:
        raise ValueError(f"{what} {v.shape} differ in shape from the other label volumes {shape}")
    return v


@dataclass(frozen=True, eq=False)
class ScanCase:
    """One scan to score: candidates, references and irrelevant findings on one voxel grid."""

    spacing_mm: tuple[float, float, float]
    candidates: tuple[ScoredCandidate, ...] = ()
    references: tuple[Reference, ...] = ()
    irrelevant: tuple[IrrelevantFinding, ...] = ()
    candidate_labels: np.ndarray | None = None
    reference_labels: np.ndarray | None = None
    irrelevant_labels: np.ndarray | None = None
    name: str = ""

    def __post_init__(self):
        sp = tuple(float(s) for s in self.spacing_mm)
        if len(sp) != 3 or not all(np.isfinite(s) and s > 0 for s in sp):
            raise ValueError(f"spacing_mm must be three positive numbers (z, y, x), not {sp}")
        object.__setattr__(self, "spacing_mm", sp)
        for field_name in ("candidates", "references", "irrelevant"):
            object.__setattr__(self, field_name, tuple(getattr(self, field_name)))
        shape = None
        for name in ("candidate_labels", "reference_labels", "irrelevant_labels"):
            v = _labels(getattr(self, name), name, shape)
            object.__setattr__(self, name, v)
            shape = shape or (v.shape if v is not None else None)
        for c in self.candidates:
            if not np.isfinite(c.score):
                raise ValueError(f"candidate at {c.centre_zyx} has a score that is not finite")
        for r in self.references:
            if not r.diameter_mm > 0:
                raise ValueError(f"reference at {r.centre_zyx} needs a positive diameter_mm")


@dataclass(frozen=True)
class ScanScore:
    """How one scan's candidates fall: per reference its best hit, and the false positives."""

    name: str
    n_candidates: int
    reference_scores: tuple[float | None, ...]
    """Per reference: the highest score of the candidates hitting it (None: missed)."""
    reference_candidates: tuple[int | None, ...]
    """Per reference: the index of that candidate."""
    false_positive_scores: tuple[float, ...]
    n_ignored: int
    """Candidates on an irrelevant finding only: neither hits nor false positives."""
    n_double: int
    """Further candidates on an already hit reference (LUNA16 ignores them too)."""
    nodule_dice: tuple[float | None, ...]
    """Per reference: Dice of its best candidate's mask with its mask (None: missed or no masks)."""

    @property
    def n_references(self) -> int:
        return len(self.reference_scores)

    @property
    def n_found(self) -> int:
        return sum(s is not None for s in self.reference_scores)

    @property
    def n_false_positives(self) -> int:
        return len(self.false_positive_scores)

    def found_at(self, threshold: float) -> int:
        """References found by a candidate scoring at least ``threshold``."""
        return sum(s is not None and s >= threshold for s in self.reference_scores)

    def false_positives_at(self, threshold: float) -> int:
        """False positives scoring at least ``threshold``."""
        return sum(s >= threshold for s in self.false_positive_scores)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "candidates": self.n_candidates,
            "references": self.n_references,
            "found": self.n_found,
            "false_positives": self.n_false_positives,
            "ignored": self.n_ignored,
            "double_hits": self.n_double,
            "reference_scores": list(self.reference_scores),
            "nodule_dice": list(self.nodule_dice),
        }


def _centres_mm(objs, spacing) -> np.ndarray:
    if not objs:
        return np.zeros((0, 3))
    return np.array([o.centre_zyx for o in objs], dtype=float).reshape(-1, 3) * np.asarray(spacing)


def _overlap_pairs(a: np.ndarray, b: np.ndarray) -> set[tuple[int, int]]:
    """Label pairs ``(label in a, label in b)`` that share at least one voxel."""
    both = (a > 0) & (b > 0)
    if not both.any():
        return set()
    pairs = np.unique(np.stack([a[both].astype(np.int64), b[both].astype(np.int64)]), axis=1)
    return {(int(x), int(y)) for x, y in pairs.T}


def _hit_matrix(case: ScanCase, targets, target_labels, radii, rule: str) -> np.ndarray:
    """bool ``(n_candidates, n_targets)``: candidate ``i`` lies on target ``j``."""
    cands = case.candidates
    out = np.zeros((len(cands), len(targets)), dtype=bool)
    if not len(cands) or not len(targets):
        return out
    c_mm = _centres_mm(cands, case.spacing_mm)
    t_mm = _centres_mm(targets, case.spacing_mm)
    dist = np.linalg.norm(c_mm[:, None, :] - t_mm[None, :, :], axis=-1)
    by_centre = dist < np.asarray(radii, dtype=float)[None, :]
    if rule == "centre":
        return by_centre
    c_has = np.array([c.label is not None and case.candidate_labels is not None for c in cands])
    t_has = np.array([t.label is not None and target_labels is not None for t in targets])
    use_mask = c_has[:, None] & t_has[None, :]
    if rule == "overlap" and not use_mask.all():
        raise ValueError(
            'rule="overlap" needs a mask (a label and a label volume) for every candidate and '
            "every reference or irrelevant region"
        )
    if not use_mask.any():
        return by_centre
    pairs = _overlap_pairs(case.candidate_labels, target_labels)
    c_lab = [c.label for c in cands]
    t_lab = [t.label for t in targets]
    by_mask = np.array([[(cl, tl) in pairs for tl in t_lab] for cl in c_lab], dtype=bool)
    return np.where(use_mask, by_mask, by_centre)


def _boxes(volume: np.ndarray | None) -> list:
    """Bounding box of each label (index ``label - 1``; None where a label is absent)."""
    from scipy import ndimage

    if volume is None:
        return []
    if volume.dtype == bool:
        volume = volume.view(np.uint8)
    return ndimage.find_objects(volume)


def _object_dice(case: ScanCase, cand: ScoredCandidate, ref: Reference, boxes) -> float | None:
    if cand.label is None or ref.label is None or not boxes[0] or not boxes[1]:
        return None
    found = [
        b[lab - 1]
        for b, lab in zip(boxes, (cand.label, ref.label))
        if 0 < lab <= len(b) and b[lab - 1] is not None
    ]
    if not found:
        return None
    box = tuple(
        slice(min(b[k].start for b in found), max(b[k].stop for b in found)) for k in range(3)
    )
    return dice(case.candidate_labels[box] == cand.label, case.reference_labels[box] == ref.label)


def candidate_outcomes(case: ScanCase, rule: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """What each candidate lies on, whatever its score: ``(hits, on_irrelevant)``, bool
    ``(n_candidates, n_references)`` and ``(n_candidates,)``. Training labels candidates with it
    once and re-scores them for every new classifier without the label volumes."""
    if rule not in RULES:
        raise ValueError(f"unknown hit rule {rule!r} (use one of {', '.join(RULES)})")
    refs = case.references
    hits = _hit_matrix(case, refs, case.reference_labels, [r.radius_mm for r in refs], rule)
    on_irr = _hit_matrix(
        case, case.irrelevant, case.irrelevant_labels, [f.radius_mm for f in case.irrelevant], rule
    ).any(axis=1)
    return hits, on_irr


def score_scan(case: ScanCase, rule: str = "auto") -> ScanScore:
    """Apply the hit rule (module doc) to one scan.

    ``rule``: ``"auto"`` (overlap where both masks are known, centre distance otherwise),
    ``"centre"`` (LUNA16's centre rule only) or ``"overlap"`` (masks only; every object needs one).
    """
    refs, cands = case.references, case.candidates
    hits, on_irr = candidate_outcomes(case, rule)
    scores = np.array([c.score for c in cands], dtype=float)
    ref_scores: list[float | None] = []
    ref_cands: list[int | None] = []
    dices: list[float | None] = []
    n_double = 0
    boxes = None
    for j, ref in enumerate(refs):
        idx = np.flatnonzero(hits[:, j])
        if idx.size == 0:
            ref_scores.append(None)
            ref_cands.append(None)
            dices.append(None)
            continue
        best = int(idx[np.argmax(scores[idx])])  # first of equal scores: file order
        n_double += idx.size - 1
        ref_scores.append(float(scores[best]))
        ref_cands.append(best)
        if boxes is None:  # one pass over each label volume, only when a nodule is found
            boxes = (_boxes(case.candidate_labels), _boxes(case.reference_labels))
        dices.append(_object_dice(case, cands[best], ref, boxes))
    on_ref = hits.any(axis=1)
    ignored = ~on_ref & on_irr
    fp = ~on_ref & ~on_irr
    return ScanScore(
        name=case.name,
        n_candidates=len(cands),
        reference_scores=tuple(ref_scores),
        reference_candidates=tuple(ref_cands),
        false_positive_scores=tuple(float(s) for s in scores[fp]),
        n_ignored=int(ignored.sum()),
        n_double=int(n_double),
        nodule_dice=tuple(dices),
    )


def candidates_from_mask(mask, probability=None) -> tuple[tuple[ScoredCandidate, ...], np.ndarray]:
    """A binary mask's 26-connected components as candidates, with their label volume.

    Each candidate's centre is its centre of mass (voxels), its score the highest ``probability``
    inside it (1.0 for every component when no probability is given), its label its component
    number in the returned label volume.
    """
    from scipy import ndimage

    m = np.asarray(mask) != 0
    if m.ndim != 3:
        raise ValueError(f"the mask must be 3-D (z, y, x), not of shape {m.shape}")
    labels, n = ndimage.label(m, structure=np.ones((3, 3, 3)))
    if n == 0:
        return (), labels
    ids = np.arange(1, n + 1)
    centres = ndimage.center_of_mass(m, labels, ids)
    if probability is None:
        scores = np.ones(n)
    else:
        p = np.asarray(probability, dtype=float)
        if p.shape != m.shape:
            raise ValueError(f"probability {p.shape} differs in shape from the mask {m.shape}")
        scores = np.asarray(ndimage.maximum(p, labels, ids), dtype=float)
    cands = tuple(
        ScoredCandidate(tuple(float(v) for v in c), float(s), int(i))
        for c, s, i in zip(centres, scores, ids)
    )
    return cands, labels
