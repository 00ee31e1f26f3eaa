"""Which pieces of a mask are one nodule: 26-connected components, then the pieces that belong
together merged, in millimetres (so a 2.5 mm and a 0.6 mm CT are treated alike).

Two rules, each one named constant:

* **Near** (:data:`MERGE_GAP_MM`): two pieces whose gap - the empty space between their nearest
  voxels, voxel faces to voxel faces - is at most 3 mm are one nodule. A gap of one slice on a
  2.5 mm CT is 2.5 mm; four empty pixels of 0.7 mm are 2.8 mm. The same tolerance groups the
  readers' outlines into nodules (:data:`napari_lungkd.lidc.nodules.DEFAULT_TOL_MM`, as pylidc).
* **Stacked** (:data:`STACKED_MIN_OVERLAP`): two pieces on different slices whose axial footprints
  overlap by at least half of the smaller footprint are the top and the bottom of one object when
  the slices between them are thinner than the shared footprint is wide (its equivalent diameter):
  a gap narrower than the object is a hole in it, not the space between two objects. This is what the
  U-Net does to a large solid nodule: on LIDC-IDRI-0001 it marks the nodule's partial-volume top
  (slices 84-87) and bottom (91-96) and misses its solid core (88-90, +20 HU, probability < 0.1),
  7.5 mm of gap that the first rule rightly does not bridge.

Merging is transitive (pieces joined through a third are one nodule).
"""

from __future__ import annotations

import math

import numpy as np

MERGE_GAP_MM = 3.0
"""Pieces closer than this (empty space between their voxels, mm) are one nodule."""
STACKED_MIN_OVERLAP = 0.5
"""Share of the smaller axial footprint that two stacked pieces must share to be one object."""

_CUBE = np.ones((3, 3, 3), dtype=bool)


def group_pieces(
    mask: np.ndarray,
    spacing_mm,
    gap_mm: float = MERGE_GAP_MM,
    stacked_overlap: float | None = STACKED_MIN_OVERLAP,
) -> tuple[np.ndarray, int, np.ndarray]:
    """``(labels, n, pieces)``: int32 labels ``1..n`` of the nodules of ``mask`` (0 background),
    each the union of the 26-connected pieces that belong together (see the module doc), and
    ``pieces[k]`` the number of pieces of nodule ``k`` (``pieces[0]`` unused).

    ``gap_mm=0`` and ``stacked_overlap=None`` give the plain components."""
    from scipy import ndimage

    labels, n = ndimage.label(np.asarray(mask) > 0, structure=_CUBE)
    spacing = np.asarray([float(s) for s in spacing_mm])
    parent = np.arange(n + 1)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    boxes = ndimage.find_objects(labels)
    pairs = []
    if gap_mm > 0:
        pairs += near_pairs(labels, boxes, spacing, gap_mm)
    if stacked_overlap is not None:
        pairs += stacked_pairs(labels, boxes, spacing, stacked_overlap)
    for i, j in pairs:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    roots = np.array([0] + [root(i) for i in range(1, n + 1)], dtype=np.int64)
    uniq, new = np.unique(roots, return_inverse=True)  # roots[0] = 0 stays 0
    relabel = new.astype(np.int32)
    pieces = np.bincount(relabel[1:], minlength=len(uniq)) if n else np.zeros(1, np.int64)
    return relabel[labels], len(uniq) - 1, pieces


def near_pairs(labels, boxes, spacing: np.ndarray, gap_mm: float) -> list[tuple[int, int]]:
    """Pairs of pieces at most ``gap_mm`` apart, voxel faces to voxel faces.

    The gap between voxels ``a`` and ``b`` is ``|max(|a - b| - 1, 0) * spacing|``: the centre
    distance to ``b`` from ``a``'s 3x3x3 neighbourhood, so a Euclidean distance transform from the
    piece dilated by one voxel gives it exactly (anisotropic spacing included)."""
    from scipy import ndimage

    reach = np.ceil(gap_mm / spacing).astype(int) + 1
    found = []
    for i, box in enumerate(boxes, start=1):
        if box is None:
            continue
        around = tuple(
            slice(max(b.start - r, 0), min(b.stop + r, size))
            for b, r, size in zip(box, reach, labels.shape)
        )
        local = labels[around]
        others = np.unique(local)
        others = others[others > i]  # each pair once, from its lower label
        if others.size == 0:
            continue
        grown = ndimage.binary_dilation(local == i, structure=_CUBE)
        gap = ndimage.distance_transform_edt(~grown, sampling=spacing)
        nearest = np.atleast_1d(ndimage.minimum(gap, local, others))
        found += [(i, int(j)) for j, d in zip(others, nearest) if d <= gap_mm]
    return found


def stacked_pairs(labels, boxes, spacing: np.ndarray, min_overlap: float) -> list[tuple[int, int]]:
    """Pairs of pieces on disjoint slices, one above the other (axial footprints sharing at least
    ``min_overlap`` of the smaller), with fewer millimetres of slices between them than the part
    they share is wide (its equivalent diameter)."""
    ids = [i for i, b in enumerate(boxes, start=1) if b is not None]
    if len(ids) < 2:
        return []
    bb = np.array([[s.start for s in boxes[i - 1]] + [s.stop for s in boxes[i - 1]] for i in ids])
    pixel_mm2 = float(spacing[1] * spacing[2])
    # a footprint is no wider than its whole box: a cheap bound before the exact test, by blocks
    # of rows so that thousands of pieces do not make a huge pair matrix
    width = 2.0 * np.sqrt((bb[:, 4] - bb[:, 1]) * (bb[:, 5] - bb[:, 2]) * pixel_mm2 / math.pi)
    candidates = []
    for lo in range(0, len(ids), 256):
        a = bb[lo : lo + 256, None, :]
        b = bb[None, :, :]
        gap = np.maximum(b[..., 0] - a[..., 3], a[..., 0] - b[..., 3]) * float(spacing[0])
        maybe = (
            (gap > 0)
            & (np.minimum(a[..., 4], b[..., 4]) > np.maximum(a[..., 1], b[..., 1]))
            & (np.minimum(a[..., 5], b[..., 5]) > np.maximum(a[..., 2], b[..., 2]))
            & (gap <= np.minimum(width[lo : lo + 256, None], width[None, :]))
        )
        ra, rb = np.nonzero(maybe)
        keep = rb > ra + lo
        candidates += [(x + lo, y, g) for x, y, g in zip(ra[keep], rb[keep], gap[ra, rb][keep])]
    footprints: dict[int, np.ndarray] = {}

    def footprint(k: int) -> np.ndarray:
        if k not in footprints:
            i = ids[k]
            footprints[k] = (labels[boxes[i - 1]] == i).any(axis=0)
        return footprints[k]

    found = []
    for a, b, gap_mm in candidates:
        fa, fb = footprint(a), footprint(b)
        y0, y1 = max(bb[a, 1], bb[b, 1]), min(bb[a, 4], bb[b, 4])
        x0, x1 = max(bb[a, 2], bb[b, 2]), min(bb[a, 5], bb[b, 5])
        shared = (
            fa[y0 - bb[a, 1] : y1 - bb[a, 1], x0 - bb[a, 2] : x1 - bb[a, 2]]
            & fb[y0 - bb[b, 1] : y1 - bb[b, 1], x0 - bb[b, 2] : x1 - bb[b, 2]]
        ).sum()
        smaller = min(int(fa.sum()), int(fb.sum()))
        shared_width_mm = 2.0 * math.sqrt(shared * pixel_mm2 / math.pi)
        if shared >= min_overlap * smaller and gap_mm <= shared_width_mm:
            found.append((ids[a], ids[b]))
    return found
