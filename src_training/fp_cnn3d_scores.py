"""How a 3-D CNN false-positive classifier is scored on the scans it never trained on.

AUC and the pooled FROC/CPM per group of held-out scans (:data:`GROUPS`: the phantoms, and the
real chests with and without inserted nodules), the operating points written into each file
(:func:`~src_training.fp_classifier.default_operating_point`: about 1 false positive per scan
on the held-out real-anatomy scans), and each scan scored by the file that held it out (:func:`held_out_from_files`, for
``bench/fp_reduction.py --cnn``). Used by :mod:`src_training.fp_cnn3d`.
"""

from __future__ import annotations

import numpy as np

from src_training.fp_data import CaseTable


def auc(tables: list[CaseTable], scores: list[np.ndarray]) -> float | None:
    """ROC AUC over the labelled candidates of ``tables`` (None without both classes)."""
    from sklearn.metrics import roc_auc_score

    y = np.concatenate([t.y for t in tables]) if tables else np.zeros(0)
    s = np.concatenate(scores) if scores else np.zeros(0)
    keep = y >= 0
    if len(np.unique(y[keep])) < 2:
        return None
    return float(roc_auc_score(y[keep], s[keep]))


def cpm(tables: list[CaseTable], scores: list[np.ndarray]):
    """CPM and the FROC sensitivities (1/8..8 FP/scan) of ``tables`` under ``scores``."""
    from napari_lungkd.scoring.froc import froc
    from src_training.fp_classifier import scan_scores

    if not tables or not sum(t.n_references for t in tables):
        return None, None
    res = froc(scan_scores(tables, scores), bootstrap=0)
    return res.cpm, list(res.sensitivities)


GROUPS = {"phantom": ("phantom",), "real anatomy": ("real", "inserted")}
"""Held-out scans are scored per group: the synthetic phantoms, and real chests (with and without
inserted nodules)."""


def metrics(tables: list[CaseTable], scores: list[np.ndarray]) -> dict:
    out = {}
    for group, kinds in GROUPS.items():
        idx = [i for i, t in enumerate(tables) if t.kind in kinds]
        tabs, sc = [tables[i] for i in idx], [scores[i] for i in idx]
        c, sens = cpm(tabs, sc)
        out[group] = {
            "scans": [t.name for t in tabs],
            "nodules": int(sum(t.n_references for t in tabs)),
            "nodules_with_candidate": int(sum(len(set(t.ref_hit[t.ref_hit >= 0])) for t in tabs)),
            "auc": auc(tabs, sc),
            "cpm": c,
            "froc_sensitivity": sens,
        }
    return out


def _held_out(split: dict, table: CaseTable) -> bool:
    """Whether a classifier with this ``data_split`` never saw ``table``'s patient (so also a copy
    with nodules inserted after it was trained)."""
    return table.patient in split["held_out_patients"] and table.name not in split["train_cases"]


def held_out_from_files(tables: list[CaseTable], paths, log=print):
    """Each table scored by the first 3-D classifier file of ``paths`` that held its patient out
    (its header's ``data_split.held_out_patients``; e.g. the same role from ``--fold A`` and
    ``--fold B``); tables no file held out are left out. A
    :class:`~src_training.fp_classifier.HeldOut` for the FP-reduction bench."""
    from napari_lungkd.inference.patch_classifier import load_patch_classifier
    from src_training.fp_classifier import HeldOut

    clfs = [load_patch_classifier(p) for p in paths]
    order, scores, without = [], [], {}
    for t in tables:
        clf = next((c for c in clfs if _held_out(c.metadata["data_split"], t)), None)
        if clf is None:
            continue
        order.append(t)
        scores.append(clf.score_patches(t.patches) if len(t.y) else np.zeros(0))
        without[t.name] = clf.metadata["data_split"]["held_out_patients"]
    log(f"{len(order)} of {len(tables)} scans held out by {len(clfs)} file(s)")
    return HeldOut(order, scores, without)
