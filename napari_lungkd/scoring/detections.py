"""One CT's detections and its reference as a scan to score (:class:`~napari_lungkd.scoring.hits.ScanCase`).

* **Detections** of a :class:`~napari_lungkd.inference.segmentation.Segmentation`
  (:func:`segmentation_candidates`): where the false-positive classifier ran, *every* candidate
  with its classifier score (those below the operating point too, so that the FROC sweeps the
  operating point), on the candidates' label volume; without it, the nodules of the mask with
  their highest U-Net probability, on the labelled mask. The *operating point* is the score from
  which a candidate is a nodule of the output (the classifier's threshold; None without one: every
  detection is in the mask).
* **A phantom's truth** (:func:`phantom_truth`): the true nodule labels that ``lungkd phantom``
  writes beside each case (``truth_labels.nii.gz``, read onto the CT's grid), each label a
  reference with its diameter from ``nodules.json`` (else the diameter of a sphere of its volume).
  As in LUNA16, a nodule under :data:`SMALL_NODULE_MM` is no reference but an irrelevant finding
  (LIDC readers mark those with a point: found or not, it counts neither way).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from napari_lungkd.scoring.hits import IrrelevantFinding, Reference, ScoredCandidate
from napari_lungkd.scoring.reference import LidcTruth

TRUTH_LABELS_NAME = "truth_labels.nii.gz"
"""The truth label file of a phantom case (``napari_lungkd.phantom.case.write_case``)."""
NODULE_FACTS_NAME = "nodules.json"
SMALL_NODULE_MM = 3.0
"""Below this diameter a nodule is an irrelevant finding, not a reference (LUNA16, LIDC)."""


def segmentation_candidates(seg) -> tuple[tuple[ScoredCandidate, ...], np.ndarray, float | None]:
    """``(candidates, their label volume, operating point)`` of a segmentation (module doc)."""
    t = getattr(seg, "triage", None)
    if t is not None:
        cands = tuple(
            ScoredCandidate(tuple(float(v) for v in c.centroid_zyx), float(s), int(c.label))
            for c, s in zip(t.candidates.items, t.scores)
        )
        return cands, t.candidates.labels, float(t.threshold)
    cands = tuple(
        ScoredCandidate(
            tuple(float(v) for v in n.centroid_zyx),
            1.0 if n.max_probability is None else float(n.max_probability),
            int(n.label),
        )
        for n in seg.nodules
    )
    return cands, seg.mask, None


def find_phantom_truth(case) -> Path | None:
    """The truth label file of a phantom case: beside its ``nodules.json``, in the case's folder
    or one of the two folders above it (``<case>/series/`` is the layout of ``write_case``);
    None if there is none."""
    case = Path(case)
    folder = case if case.is_dir() else case.parent
    for _ in range(3):
        truth = folder / TRUTH_LABELS_NAME
        if is_phantom_truth(truth):
            return truth
        if folder.parent == folder:
            return None
        folder = folder.parent
    return None


def is_phantom_truth(path: Path) -> bool:
    """Whether ``path`` is a phantom's truth label file (not a CT to segment)."""
    path = Path(path)
    return (
        path.name == TRUTH_LABELS_NAME
        and path.is_file()
        and (path.parent / NODULE_FACTS_NAME).is_file()
    )


def _diameters(facts_path: Path) -> dict[int, float]:
    try:
        facts = json.loads(Path(facts_path).read_text())
        return {int(n["label"]): float(n["diameter_mm"]) for n in facts.get("nodules", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def phantom_truth(truth_path, ct) -> LidcTruth:
    """References (and small nodules as irrelevant findings) from a phantom's truth (module doc).

    Raises :class:`~napari_lungkd.errors.ExportError` (from ``read_mask``) when the file is not
    on ``ct``'s grid."""
    from napari_lungkd.io.masks import read_mask

    truth_path = Path(truth_path)
    labels = np.asarray(read_mask(truth_path, ct))
    diameters = _diameters(truth_path.parent / NODULE_FACTS_NAME)
    return labels_truth(labels, ct.spacing_mm, diameters, source=str(truth_path))


def labels_truth(labels, spacing_mm, diameters=None, ignore=None, source: str = "") -> LidcTruth:
    """References from a nodule label volume (each label one nodule; its diameter from
    ``diameters`` {label: mm}, else that of a sphere of its volume); nodules under
    :data:`SMALL_NODULE_MM` and each connected region of ``ignore`` (a host's own lesions in an
    inserted case) are irrelevant findings."""
    from scipy import ndimage

    labels = np.asarray(labels)
    diameters = diameters or {}
    spacing = tuple(float(v) for v in spacing_mm)
    voxel_mm3 = float(np.prod(spacing))
    ids = [int(v) for v in np.unique(labels) if v > 0]
    centres = ndimage.center_of_mass(labels > 0, labels, ids) if ids else []
    counts = ndimage.sum_labels(np.ones(labels.shape), labels, ids) if ids else []
    ref_labels = np.zeros(labels.shape, dtype=np.uint16)
    irr_labels = np.zeros(labels.shape, dtype=np.uint16)
    references: list[Reference] = []
    irrelevant: list[IrrelevantFinding] = []

    def sphere_d(count: float) -> float:
        return 2.0 * (3.0 * count * voxel_mm3 / (4.0 * math.pi)) ** (1 / 3)

    for lab, centre, count in zip(ids, centres, counts):
        zyx = tuple(float(v) for v in centre)
        d = diameters.get(lab) or sphere_d(count)
        if d >= SMALL_NODULE_MM:
            references.append(Reference(zyx, float(d), len(references) + 1, f"nodule {lab}"))
            ref_labels[labels == lab] = len(references)
        else:
            irrelevant.append(IrrelevantFinding(zyx, d / 2.0, len(irrelevant) + 1, "small_nodule"))
            irr_labels[labels == lab] = len(irrelevant)
    if ignore is not None:
        regions, n = ndimage.label(np.asarray(ignore) > 0)
        for k in range(1, n + 1):
            where = regions == k
            zyx = tuple(float(v) for v in ndimage.center_of_mass(where))
            irrelevant.append(
                IrrelevantFinding(
                    zyx, sphere_d(float(where.sum())) / 2.0, len(irrelevant) + 1, "host_lesion"
                )
            )
            irr_labels[where & (irr_labels == 0)] = len(irrelevant)
    return LidcTruth(
        references=tuple(references),
        irrelevant=tuple(irrelevant),
        reference_labels=ref_labels,
        irrelevant_labels=irr_labels,
        spacing_mm=spacing,
        source=source,
    )
