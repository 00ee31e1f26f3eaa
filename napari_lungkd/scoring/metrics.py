"""Segmentation scores: overlap, surface distances in mm, lesion matching, reader agreement.

Pure functions on ``(z, y, x)`` arrays (anything non-zero is foreground). Conventions:

* **Empty vs empty**: :func:`dice` and :func:`iou` return 1.0 when both masks are empty (nothing
  to find, nothing found: perfect agreement), 0.0 when exactly one is empty.
* **Surface distances** (:func:`hd95_mm`, :func:`mean_surface_distance_mm`) are measured between
  the surface voxels of the two masks (foreground voxels with a background face-neighbour; the
  array border counts as background), in millimetres using ``spacing_mm`` ``(z, y, x)``. Both
  empty: 0.0; exactly one empty: ``inf``. HD95 is the larger of the two directed 95th
  percentiles (medpy's ``hd95``); the mean surface distance is the mean of the two directed
  means (medpy's ``assd``). The work is cropped to the masks' joint bounding box.
* **Lesions** (:func:`match_lesions`): predicted connected components (26-connected; the labels
  of an integer label volume) are matched to reference nodules by overlap (at least
  ``min_overlap_voxels`` shared voxels). A reference nodule touched by a component is a true
  positive, one touched by none a false negative; a component touching no reference nodule is a
  false positive. Per-nodule Dice compares a reference nodule with the union of the components
  touching it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a) != 0
    b = np.asarray(b) != 0
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    return a, b


def dice(a, b) -> float:
    """Dice coefficient 2|A∩B| / (|A| + |B|); 1.0 when both masks are empty."""
    a, b = _pair(a, b)
    return dice_from_counts(int(np.logical_and(a, b).sum()), int(a.sum()), int(b.sum()))


def dice_from_counts(intersection: float, n_a: float, n_b: float) -> float:
    """Dice from voxel counts: 2 * intersection / (n_a + n_b); 1.0 when both are empty.

    :func:`dice` is this on two masks; pooled ("global") Dice over many scans or batches sums
    the counts first (training's validation, src_training's results table)."""
    total = n_a + n_b
    if total == 0:
        return 1.0
    return 2.0 * intersection / total


def iou(a, b) -> float:
    """Intersection over union |A∩B| / |A∪B|; 1.0 when both masks are empty."""
    a, b = _pair(a, b)
    union = int(np.logical_or(a, b).sum())
    if union == 0:
        return 1.0
    return int(np.logical_and(a, b).sum()) / union


def _crop(a: np.ndarray, b: np.ndarray):
    idx = np.argwhere(a | b)
    lo = np.maximum(idx.min(axis=0) - 1, 0)
    hi = np.minimum(idx.max(axis=0) + 2, a.shape)
    sl = tuple(slice(int(x), int(y)) for x, y in zip(lo, hi))
    return a[sl], b[sl]


def _surface(m: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return m & ~ndimage.binary_erosion(m, border_value=0)


def surface_distances_mm(a, b, spacing_mm) -> tuple[np.ndarray, np.ndarray]:
    """Directed distances (mm) from A's surface voxels to B's surface, and from B's to A's."""
    from scipy import ndimage

    a, b = _pair(a, b)
    if a.ndim != len(spacing_mm):
        raise ValueError(f"spacing_mm {tuple(spacing_mm)} does not fit masks of shape {a.shape}")
    if not a.any() or not b.any():
        raise ValueError("surface distances need two non-empty masks")
    a, b = _crop(a, b)
    sa, sb = _surface(a), _surface(b)
    spacing = tuple(float(s) for s in spacing_mm)
    dist_to_b = ndimage.distance_transform_edt(~sb, sampling=spacing)
    dist_to_a = ndimage.distance_transform_edt(~sa, sampling=spacing)
    return dist_to_b[sa], dist_to_a[sb]


def _empty_case(a, b) -> float | None:
    a, b = _pair(a, b)
    ea, eb = not a.any(), not b.any()
    if ea and eb:
        return 0.0
    if ea or eb:
        return float("inf")
    return None


def hd95_mm(a, b, spacing_mm) -> float:
    """95th-percentile Hausdorff distance in mm (0.0 both empty, inf one empty)."""
    special = _empty_case(a, b)
    if special is not None:
        return special
    d_ab, d_ba = surface_distances_mm(a, b, spacing_mm)
    return float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))


def mean_surface_distance_mm(a, b, spacing_mm) -> float:
    """Average symmetric surface distance in mm (0.0 both empty, inf one empty)."""
    special = _empty_case(a, b)
    if special is not None:
        return special
    d_ab, d_ba = surface_distances_mm(a, b, spacing_mm)
    return float((d_ab.mean() + d_ba.mean()) / 2.0)


# --------------------------------------------------------------------------------------------
# lesions


def _reference_labels(ref, shape) -> np.ndarray:
    """A label volume from a label array or a list of masks (later masks do not overwrite)."""
    if isinstance(ref, np.ndarray) and ref.ndim == len(shape):
        if ref.shape != tuple(shape):
            raise ValueError(f"reference labels {ref.shape} differ from the prediction {shape}")
        if ref.dtype == bool:
            from scipy import ndimage

            return ndimage.label(ref, structure=np.ones((3,) * ref.ndim))[0]
        return ref.astype(np.int64, copy=False)
    labels = np.zeros(shape, dtype=np.int64)
    for i, m in enumerate(ref, start=1):
        m = np.asarray(m) != 0
        if m.shape != tuple(shape):
            raise ValueError(f"reference mask {i} {m.shape} differs from the prediction {shape}")
        labels[m & (labels == 0)] = i
    return labels


@dataclass(frozen=True)
class LesionMatch:
    """How a predicted mask's components line up with the reference nodules of one scan."""

    tp: int
    fn: int
    fp: int
    nodule_dice: dict[int, float]
    """Reference label -> Dice with the union of the predicted components touching it."""
    matched: dict[int, tuple[int, ...]] = field(default_factory=dict)
    """Reference label -> predicted component labels touching it."""
    false_positive_components: tuple[int, ...] = ()

    @property
    def n_reference(self) -> int:
        return self.tp + self.fn

    @property
    def sensitivity(self) -> float | None:
        """TP / (TP + FN); None when the scan has no reference nodule."""
        return self.tp / self.n_reference if self.n_reference else None

    @property
    def fp_per_scan(self) -> float:
        return float(self.fp)

    def to_dict(self) -> dict:
        return {
            "tp": self.tp,
            "fn": self.fn,
            "fp": self.fp,
            "sensitivity": self.sensitivity,
            "fp_per_scan": self.fp_per_scan,
            "nodule_dice": {str(k): v for k, v in self.nodule_dice.items()},
        }


def match_lesions(pred_mask, ref_labels_or_masks, spacing_mm=None, min_overlap_voxels: int = 1):
    """Match predicted connected components to reference nodules by overlap (see module doc).

    ``pred_mask``: a boolean mask (its 26-connected components are the predictions) or an integer
    label volume (each label one prediction: a segmentation's labelled mask, whose label ``i`` is
    nodule ``i`` of its table, pieces of one nodule included).
    ``ref_labels_or_masks``: an integer label volume (0 = background), a boolean mask (its
    26-connected components are the nodules) or a list of boolean masks (one per nodule).
    ``spacing_mm`` is accepted for symmetry with the other metrics; matching is by voxels.
    """
    from scipy import ndimage

    given = np.asarray(pred_mask)
    pred = given != 0
    ref = _reference_labels(ref_labels_or_masks, pred.shape)
    if np.issubdtype(given.dtype, np.integer):  # a label volume: its labels, as numbered
        comps = given
        comp_ids = [int(v) for v in np.unique(given[pred])]
    else:
        comps, n_comp = ndimage.label(pred, structure=np.ones((3,) * pred.ndim))
        comp_ids = list(range(1, n_comp + 1))
    ref_ids = [int(v) for v in np.unique(ref) if v != 0]
    both = (ref > 0) & (comps > 0)
    pairs = np.zeros((2, 0), dtype=np.int64)
    counts = np.zeros(0, dtype=np.int64)
    if both.any():
        pairs, counts = np.unique(np.stack([ref[both], comps[both]]), axis=1, return_counts=True)
    touching: dict[int, list[int]] = {r: [] for r in ref_ids}
    used_components: set[int] = set()
    for (r, c), n in zip(pairs.T, counts):
        if n >= min_overlap_voxels:
            touching[int(r)].append(int(c))
            used_components.add(int(c))
    nodule_dice = {}
    for r in ref_ids:
        ref_m = ref == r
        pred_m = np.isin(comps, touching[r]) if touching[r] else np.zeros_like(pred)
        nodule_dice[r] = dice(ref_m, pred_m)
    tp = sum(1 for r in ref_ids if touching[r])
    fps = tuple(c for c in comp_ids if c not in used_components)
    return LesionMatch(
        tp=tp,
        fn=len(ref_ids) - tp,
        fp=len(fps),
        nodule_dice=nodule_dice,
        matched={r: tuple(touching[r]) for r in ref_ids},
        false_positive_components=fps,
    )


def summarise_matches(matches) -> dict:
    """Pool per-scan matches: total TP/FN/FP, sensitivity, false positives per scan, mean Dice."""
    matches = list(matches)
    tp = sum(m.tp for m in matches)
    fn = sum(m.fn for m in matches)
    fp = sum(m.fp for m in matches)
    dices = [d for m in matches for d in m.nodule_dice.values()]
    return {
        "scans": len(matches),
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "sensitivity": tp / (tp + fn) if tp + fn else None,
        "fp_per_scan": fp / len(matches) if matches else None,
        "mean_nodule_dice": float(np.mean(dices)) if dices else None,
    }


@dataclass(frozen=True)
class ReaderAgreement:
    """Pairwise Dice between readers: the inter-observer ceiling a model is compared to."""

    pairs: dict[tuple[int, int], float]

    @property
    def mean(self) -> float | None:
        return float(np.mean(list(self.pairs.values()))) if self.pairs else None

    @property
    def min(self) -> float | None:
        return float(min(self.pairs.values())) if self.pairs else None

    @property
    def max(self) -> float | None:
        return float(max(self.pairs.values())) if self.pairs else None


def reader_vs_reader_dice(reader_masks) -> ReaderAgreement:
    """Dice of every pair of readers' masks (pairs where both are empty carry no information
    and are left out)."""
    masks = [np.asarray(m) != 0 for m in reader_masks]
    pairs = {}
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            if not masks[i].any() and not masks[j].any():
                continue
            pairs[(i, j)] = dice(masks[i], masks[j])
    return ReaderAgreement(pairs)
