"""Accepting a candidate below the operating point by hand: its voxels become a new nodule.

A run's candidates are read one way
(:func:`~napari_lungkd.scoring.detections.segmentation_candidates`: with the false-positive
classifier, every 3-D candidate on the candidates' label volume; without it, the run's nodules on
its labelled mask), numbered as the hidden candidates points layer
numbers them (:func:`~napari_lungkd._napari.operating_point.candidate_scores`). An annotator who
judges one that the operating point drops to be a nodule accepts it (:func:`accept`):

* it joins the nodules shown as the next label (nodule ``i`` of the table stays label ``i``), as a
  :class:`HandNodule` that keeps its score and which candidate it was, and says it was added by
  hand;
* it stays added when the operating point moves (:func:`with_hand_nodules`, unless the point
  then keeps it anyway), until the model runs again;
* the provenance lists every nodule added so (:func:`hand_provenance`), and the model's own mask
  leaves them out (:func:`model_view`), so the saved edit summary counts their voxels as added by
  hand and a DICOM-SEG says it is semi-automatic.

No Qt, no napari: the session and the tests use this without a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from napari_lungkd.errors import LungKDError
from napari_lungkd.inference.nodules import Nodule

ADDED_BY_HAND = "added by hand"
HOW = "a candidate below the operating point, accepted by the annotator"
MAX_LABEL = 254
"""The highest label a nodule added by hand may take: the brush paints 255
(:data:`napari_lungkd._napari.result_layers.EDIT_LABEL`)."""


@dataclass(frozen=True)
class HandNodule(Nodule):
    """A nodule of the table that the annotator added by accepting a dropped candidate."""

    candidate: int = -1
    """Its index among the run's candidates (the candidates points layer's order)."""
    candidate_label: int = 0
    """Its value in the run's candidate label volume."""
    added: str = ADDED_BY_HAND


def _candidate(own, index: int):
    """``(label volume, its label there, half-open bbox, score)`` of candidate ``index``."""
    from napari_lungkd.scoring.detections import segmentation_candidates

    cands, labels, _ = segmentation_candidates(own)
    if not 0 <= int(index) < len(cands):
        raise LungKDError(
            f"There is no candidate {index}: the {own.provenance.model} run has {len(cands)}."
        )
    items = own.triage.candidates.items if own.triage is not None else own.nodules
    cand = cands[int(index)]
    return labels, int(cand.label), tuple(int(v) for v in items[int(index)].bbox), cand.score


def candidate_voxels(own, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The voxels ``(z, y, x)`` of candidate ``index`` of the run ``own``."""
    labels, label, (z0, y0, x0, z1, y1, x1), _ = _candidate(own, index)
    zz, yy, xx = np.nonzero(np.asarray(labels)[z0:z1, y0:y1, x0:x1] == label)
    return zz + z0, yy + y0, xx + x0


def hand_nodule(own, index: int, ct) -> HandNodule:
    """Candidate ``index`` of the run ``own`` measured as a nodule (label 0 until it is added)."""
    from napari_lungkd.inference.nodules import label_nodules

    labels, label, _, score = _candidate(own, index)
    if own.triage is None:  # the candidates are the run's nodules: already measured
        base = own.nodules[int(index)]
    else:  # one 26-connected component: one nodule, measured as every nodule is
        mask = np.zeros(np.shape(labels), dtype=bool)
        mask[candidate_voxels(own, index)] = True
        base = label_nodules(
            mask,
            ct.spacing_mm,
            hu=ct.hu,
            probability=own.probability,
            min_volume_mm3=0.0,
            ct=ct if hasattr(ct, "index_to_lps") else None,
            merge_gap_mm=0.0,
            stacked_overlap=None,
        )[0][0]
        base = replace(base, score=float(score))
    facts = {f.name: getattr(base, f.name) for f in fields(Nodule)}
    facts["label"] = 0
    return HandNodule(**facts, candidate=int(index), candidate_label=label)


def hand_labels(seg) -> list[int]:
    """The labels of ``seg``'s nodules that were added by hand."""
    return [n.label for n in seg.nodules if isinstance(n, HandNodule)]


def model_view(seg):
    """``seg`` without the nodules added by hand (the model's own at its point); ``seg`` itself
    when it has none. They are the last labels, so no other label changes."""
    labels = hand_labels(seg)
    if not labels:
        return seg
    mask = np.where(np.isin(seg.mask, labels), 0, seg.mask).astype(seg.mask.dtype)
    nodules = [n for n in seg.nodules if not isinstance(n, HandNodule)]
    return replace(seg, mask=mask, nodules=nodules)


def with_hand_nodules(shown, own, hand: Sequence[HandNodule], kept: np.ndarray):
    """``shown`` (the model's nodules at a point, none added by hand) with every ``hand`` nodule
    whose candidate the point drops (``kept[i]`` False) appended as the next label."""
    add = [h for h in hand if not bool(kept[h.candidate])]
    if not add:
        return shown
    mask = np.array(shown.mask, dtype=np.uint16, copy=True)
    nodules = list(shown.nodules)
    for h in add:
        label = len(nodules) + 1
        if label > MAX_LABEL:
            raise LungKDError(
                f"The mask already holds {len(nodules)} nodules, the most it can: raise the "
                "operating point before adding more by hand."
            )
        voxels = candidate_voxels(own, h.candidate)
        free = mask[voxels] == 0  # candidates are apart from each other: all of them
        mask[tuple(v[free] for v in voxels)] = label
        nodules.append(replace(h, label=label))
    return replace(shown, mask=mask, nodules=nodules)


def accept(shown, own, hand: Sequence[HandNodule], indices, kept: np.ndarray, ct):
    """Accept candidates ``indices`` of the run ``own`` as nodules added by hand.

    ``shown``: the Segmentation shown now (with the nodules already added by hand, ``hand``);
    ``kept``: which candidates the operating point keeps. Returns ``(hand nodules, Segmentation
    shown)``; the Segmentation is None when every index is kept already or was accepted before."""
    taken = {h.candidate for h in hand}
    new = []
    for index in dict.fromkeys(int(i) for i in indices):
        if not 0 <= index < len(kept):
            raise LungKDError(f"There is no candidate {index}: the run has {len(kept)}.")
        if not kept[index] and index not in taken:
            new.append(hand_nodule(own, index, ct))
    if not new:
        return tuple(hand), None
    hand = (*hand, *new)
    return hand, with_hand_nodules(model_view(shown), own, hand, kept)


def shown_base(model_mask: np.ndarray, seg) -> np.ndarray:
    """The mask an editable layer was shown with: ``model_mask`` (the model's own, without the
    nodules added by hand) plus ``seg``'s nodules added by hand, each in its label. What the
    user's edits are measured against when the operating point moves."""
    labels = hand_labels(seg)
    mask = np.asarray(seg.mask)
    if not labels or mask.shape != np.shape(model_mask):
        return model_mask
    where = np.isin(mask, labels)
    out = np.array(model_mask, copy=True)
    out[where] = mask[where]
    return out


def hand_provenance(seg) -> list[dict]:
    """One entry per nodule of ``seg`` added by hand, for the provenance (``added_by_hand``)."""
    out = []
    for n in seg.nodules:
        if isinstance(n, HandNodule):
            out.append(
                {
                    "label": int(n.label),
                    "added": n.added,
                    "how": HOW,
                    "candidate": n.candidate,
                    "candidate_label": n.candidate_label,
                    "score": None if n.score is None else round(float(n.score), 6),
                    "max_probability": (
                        None if n.max_probability is None else round(float(n.max_probability), 6)
                    ),
                    "n_voxels": int(n.n_voxels),
                    "volume_mm3": round(float(n.volume_mm3), 3),
                    "diameter_mm": round(float(n.diameter_mm), 3),
                    "centroid_zyx": [round(float(v), 3) for v in n.centroid_zyx],
                }
            )
    return out
