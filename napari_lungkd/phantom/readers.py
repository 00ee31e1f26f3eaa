"""Simulated LIDC radiologists: who outlines what, how precisely, and what they mark by mistake.

Each reader has a boundary bias (draws a little big or small), a smooth boundary jitter, and a
miss rate that grows for subtle nodules. Nodules of 3 mm and more are outlined slice by slice;
smaller ones get a single point; a few vessel cross-sections get a non-nodule mark and now and
then a small-nodule point. Outlines follow TCIA's convention: the edge map lists the first pixels
*outside* the nodule (so a parser that fills the polygon and excludes the edge pixels recovers the
reader's region). Holes (a cavity) become ``inclusion=FALSE`` ROIs whose edge pixels are the hole's
own border pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

MISS_BY_SUBTLETY = {1: 0.45, 2: 0.3, 3: 0.15, 4: 0.06, 5: 0.02}


@dataclass(frozen=True)
class Roi:
    z_index: int
    inclusion: bool
    points_xy: tuple[tuple[int, int], ...]  # (column, row) pixels


@dataclass(frozen=True)
class Annotation:
    nodule_id: str
    rois: tuple[Roi, ...]
    characteristics: dict | None  # None for small (< 3 mm) marks, as in real files
    truth_label: int | None  # which phantom nodule (None: a false mark)
    small: bool


@dataclass(frozen=True)
class NonNodule:
    non_nodule_id: str
    z_index: int
    x: int
    y: int


@dataclass(frozen=True)
class ReaderRead:
    reader_id: str
    annotations: tuple[Annotation, ...]
    non_nodules: tuple[NonNodule, ...] = field(default_factory=tuple)
    bias_mm: float = 0.0
    jitter_mm: float = 0.0


def _id_maker(rng, style: int):
    base = int(rng.integers(100, 999))
    counter = iter(range(1, 1000))

    def make() -> str:
        i = next(counter)
        if style == 0:
            return f"Nodule {i:03d}"
        if style == 1:
            return f"IL{base:03d}_{int(rng.integers(100000, 999999))}"
        if style == 2:
            return str(i - 1)
        return f"MI014_{base}{i:02d}"

    return make


def simulate_readers(phantom, n_readers: int, rng) -> tuple[ReaderRead, ...]:
    """The reading sessions of ``n_readers`` (1-4 in LIDC) simulated radiologists."""
    reads = []
    boxes = ndimage.find_objects(
        phantom.labels, max_label=max([f.label for f in phantom.nodules], default=0)
    )
    for _ in range(n_readers):
        bias = float(np.clip(rng.normal(0.1, 0.5), -1.0, 1.1))
        jitter = float(rng.uniform(0.35, 0.8))
        miss_scale = float(rng.uniform(0.5, 1.5))
        make_id = _id_maker(rng, int(rng.integers(0, 4)))
        anns: list[Annotation] = []
        for fact in phantom.nodules:
            miss = MISS_BY_SUBTLETY.get(fact.subtlety, 0.1) * miss_scale
            if rng.random() < (0.3 if fact.small else miss):
                continue
            if fact.small:
                z, y, x = np.round(fact.centre_zyx).astype(int) + np.r_[0, rng.integers(-1, 2, 2)]
                anns.append(
                    Annotation(
                        make_id(), (Roi(int(z), True, ((int(x), int(y)),)),), None, fact.label, True
                    )
                )
                continue
            rois = outline_rois(phantom, fact.label, boxes[fact.label - 1], bias, jitter, rng)
            if rois:
                anns.append(
                    Annotation(make_id(), rois, characteristics(fact, rng), fact.label, False)
                )
        nons = []
        d = phantom.distractors_zyx
        if len(d):
            for j, k in enumerate(rng.permutation(len(d))[: int(rng.poisson(1.5))]):
                z, y, x = np.round(d[k]).astype(int)
                nons.append(NonNodule(f"_Non-nodule {j + 1:03d}", int(z), int(x), int(y)))
            if rng.random() < 0.15:  # a vessel taken for a small nodule
                z, y, x = np.round(d[int(rng.integers(len(d)))]).astype(int)
                anns.append(
                    Annotation(
                        make_id(), (Roi(int(z), True, ((int(x), int(y)),)),), None, None, True
                    )
                )
        reads.append(
            ReaderRead(
                f"{int(rng.integers(10**8, 10**10))}", tuple(anns), tuple(nons), bias, jitter
            )
        )
    return tuple(reads)


def reader_mask(truth: np.ndarray, spacing_mm, bias_mm: float, jitter_mm: float, rng) -> np.ndarray:
    """The region a reader with this bias and jitter would outline around ``truth`` (a box)."""
    inside = ndimage.distance_transform_edt(truth, sampling=spacing_mm)
    outside = ndimage.distance_transform_edt(~truth, sampling=spacing_mm)
    # > 0 outside, < 0 inside; shifted by half a pixel so that the zero level lies on the voxel
    # faces (otherwise a bias below one pixel would never move the outline)
    half = 0.5 * float(min(spacing_mm[1:]))
    signed = outside - inside + np.where(truth, half, -half)
    noise = ndimage.gaussian_filter(rng.standard_normal(truth.shape), sigma=(1.0, 3.0, 3.0))
    noise /= noise.std() + 1e-9
    return signed < bias_mm + jitter_mm * noise


def outline_rois(
    phantom, label: int, box_slices, bias_mm: float, jitter_mm: float, rng
) -> tuple[Roi, ...]:
    """Per-slice outlines (and hole outlines) of one reader around truth nodule ``label``."""
    from skimage.measure import find_contours

    if box_slices is None:
        return ()
    pad = np.array([2, 6, 6])
    lo = np.maximum(np.array([s.start for s in box_slices]) - pad, 0)
    hi = np.minimum(np.array([s.stop for s in box_slices]) + pad, phantom.labels.shape)
    box = phantom.labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] == label
    mask = reader_mask(box, phantom.spacing_mm, bias_mm, jitter_mm, rng)
    cross = ndimage.generate_binary_structure(2, 1)
    rois: list[Roi] = []
    for k in range(mask.shape[0]):
        sl = mask[k]
        if sl.sum() < 2:
            continue
        filled = ndimage.binary_fill_holes(sl)
        comps, n = ndimage.label(filled, structure=np.ones((3, 3)))
        for c in range(1, n + 1):
            comp = comps == c
            if comp.sum() < 2:
                continue
            edge = _edge_chain(np.pad(ndimage.binary_dilation(comp, cross), 1), find_contours)
            if edge:
                rois.append(Roi(int(lo[0] + k), True, _shift(edge, lo)))
            holes, nh = ndimage.label(comp & ~sl)
            for h in range(1, nh + 1):
                edge = _edge_chain(np.pad(holes == h, 1), find_contours)
                if edge:
                    rois.append(Roi(int(lo[0] + k), False, _shift(edge, lo)))
    return tuple(rois)


def _edge_chain(region: np.ndarray, find_contours) -> list[tuple[int, int]]:
    """The closed chain of ``region``'s border pixels (row, col), in order, in padded coordinates."""
    contours = find_contours(region.astype(np.float32), 0.9)
    if not contours:
        return []
    c = max(contours, key=len)
    pts = np.round(c).astype(int)
    keep = np.ones(len(pts), bool)
    keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
    pts = pts[keep]
    if len(pts) > 1 and np.all(pts[0] == pts[-1]):
        pts = pts[:-1]
    return [(int(r) - 1, int(q) - 1) for r, q in pts]


def _shift(edge, lo) -> tuple[tuple[int, int], ...]:
    return tuple((int(col + lo[2]), int(row + lo[1])) for row, col in edge)


def characteristics(fact, rng) -> dict:
    """The nine LIDC ratings a reader gives this nodule (1-5; calcification 1-6), with reader noise."""

    def jit(v, lo=1, hi=5):
        return int(np.clip(v + rng.integers(-1, 2) * (rng.random() < 0.35), lo, hi))

    margin = {"smooth": 5, "lobulated": 3, "spiculated": 2}[fact.margin]
    lob = {"smooth": 1, "lobulated": 4, "spiculated": 2}[fact.margin]
    spic = {"smooth": 1, "lobulated": 2, "spiculated": 4}[fact.margin]
    texture = {"ground-glass": 1, "part-solid": 3}.get(fact.kind, 5)
    malig = (
        1
        if fact.kind == "calcified"
        else 2 + (fact.diameter_mm > 10) + (fact.margin == "spiculated")
    )
    return {
        "subtlety": jit(fact.subtlety),
        "internalStructure": 4 if fact.cavity else 1,
        "calcification": fact.calcification,
        "sphericity": jit(4 if fact.margin == "smooth" else 3),
        "margin": jit(margin),
        "lobulation": jit(lob),
        "spiculation": jit(spic),
        "texture": jit(texture),
        "malignancy": jit(malig),
    }
