"""Group the readers' outlines into physical nodules and build consensus masks.

LIDC gives no nodule identity across readers: pylidc's ``Scan.cluster_annotations`` links two
annotations when their edge points come within a tolerance and takes connected components. That
can put two outlines of *one* reader into one nodule (a reader who drew a nodule in two pieces,
pylidc issue #18). Here the link is the same (smallest distance between edge points, in mm), but
the grouping honours **at most one annotation per reader per nodule**:

* candidate links (distance <= ``tol_mm``) are taken in order of increasing distance (single
  linkage, Kruskal style); a link that would join two groups sharing a reader is skipped;
* ties (equal distances - common, as touching outlines are all at distance 0) go to the pair
  sharing more voxels, then to file order (the lower first index, then the lower second index).

So a reader's second piece becomes a nodule of its own instead of inflating the consensus
denominator. Nodules are numbered by increasing mean z of their edge points (as pylidc sorts).

Consensus (pylidc's ``utils.consensus``): a voxel belongs to the nodule's consensus when at least
``level`` of the annotations in that nodule include it (default 0.5). The LUNA16 rule keeps only
nodules marked by at least three readers (and >= 3 mm where the pixel size is known).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_lungkd.lidc.parse import CHARACTERISTIC_NAMES
from napari_lungkd.lidc.raster import AnnotationMask, SliceGrid

NOMINAL_PIXEL_MM = 0.7
"""In-plane pixel size assumed for clustering on the XML-only grid (LIDC's typical pixel size)."""
DEFAULT_TOL_MM = 3.0
LUNA16_MIN_READERS = 3
LUNA16_MIN_DIAMETER_MM = 3.0


def _pixel_mm(grid: SliceGrid) -> tuple[float, float]:
    if grid.spacing_mm is None:
        return NOMINAL_PIXEL_MM, NOMINAL_PIXEL_MM
    return float(grid.spacing_mm[1]), float(grid.spacing_mm[2])


def points_mm(mask: AnnotationMask) -> np.ndarray:
    """Edge points of an annotation as ``(z_mm, y_mm, x_mm)`` (y/x from the pixel size)."""
    p = mask.points_zyx()
    if len(p) == 0:
        return np.zeros((0, 3))
    py, px = _pixel_mm(mask.grid)
    z = np.asarray(mask.grid.z_positions_mm, dtype=float)[p[:, 0]]
    return np.c_[z, p[:, 1] * py, p[:, 2] * px]


def _min_distance(pa: np.ndarray, pb: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    if len(pa) == 0 or len(pb) == 0:
        return float("inf")
    d, _ = cKDTree(pb).query(pa, k=1)
    return float(d.min())


def annotation_distance_mm(a: AnnotationMask, b: AnnotationMask) -> float:
    """Smallest distance in mm between the edge points of two annotations (inf if one is empty)."""
    return _min_distance(points_mm(a), points_mm(b))


def shared_voxels(a: AnnotationMask, b: AnnotationMask) -> int:
    """How many voxels two annotation masks share."""
    lo = np.maximum(a.offset_zyx, b.offset_zyx)
    hi = np.minimum(np.add(a.offset_zyx, a.box.shape), np.add(b.offset_zyx, b.box.shape))
    if np.any(hi <= lo):
        return 0
    sa = a.box[tuple(slice(x - o, y - o) for x, y, o in zip(lo, hi, a.offset_zyx))]
    sb = b.box[tuple(slice(x - o, y - o) for x, y, o in zip(lo, hi, b.offset_zyx))]
    return int(np.count_nonzero(sa & sb))


def cluster_annotations(
    masks: list[AnnotationMask], tol_mm: float = DEFAULT_TOL_MM
) -> list[list[int]]:
    """Group annotation indices into nodules: at most one per reader, closest links first."""
    n = len(masks)
    pts = [points_mm(m) for m in masks]
    lo = np.array([p.min(0) if len(p) else np.full(3, np.inf) for p in pts]).reshape(n, 3)
    hi = np.array([p.max(0) if len(p) else np.full(3, -np.inf) for p in pts]).reshape(n, 3)
    pairs = []
    for i in range(n):
        if not len(pts[i]):
            continue
        # cheap box-distance pre-check (vectorised over j) before the exact nearest-point distance
        gap = np.maximum(0, np.maximum(lo[i] - hi[i + 1 :], lo[i + 1 :] - hi[i]))
        near = np.flatnonzero(np.linalg.norm(gap, axis=1) <= tol_mm) + i + 1
        for j in near.tolist():
            d = _min_distance(pts[i], pts[j])
            if d <= tol_mm:
                pairs.append((d, -shared_voxels(masks[i], masks[j]), i, j))
    parent = list(range(n))
    readers = [{m.reader} for m in masks]

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for _, _, i, j in sorted(pairs):
        ri, rj = find(i), find(j)
        if ri == rj or readers[ri] & readers[rj]:
            continue
        lo, hi = min(ri, rj), max(ri, rj)
        parent[hi] = lo
        readers[lo] |= readers[hi]
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)

    def mean_z(idx: list[int]) -> float:
        zs = [pts[i][:, 0].mean() for i in idx if len(pts[i])]
        return float(np.mean(zs)) if zs else float("inf")

    return sorted(groups.values(), key=lambda g: (mean_z(g), g[0]))


def diameter_mm(mask: AnnotationMask) -> float | None:
    """pylidc's diameter: the largest in-plane distance between edge points of one ROI (mm)."""
    from scipy.spatial.distance import pdist

    if mask.grid.spacing_mm is None:
        return None
    py, px = _pixel_mm(mask.grid)
    best = 0.0
    for roi in mask.mark.outline_rois:
        xy = roi.points_xy.astype(float) * np.array([px, py])
        if len(xy) > 1:
            best = max(best, float(pdist(xy).max()))
    return best


@dataclass(frozen=True, eq=False)
class ConsensusMask:
    """A nodule's consensus voxels in a small box placed at ``offset_zyx`` on ``grid``."""

    offset_zyx: tuple[int, int, int]
    box: np.ndarray
    """bool ``(dz, dy, dx)``."""
    votes: np.ndarray
    """uint8: how many annotations of the nodule include each voxel."""
    grid: SliceGrid

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(o, o + s) for o, s in zip(self.offset_zyx, self.box.shape))  # type: ignore[return-value]

    @property
    def voxels(self) -> int:
        return int(self.box.sum())


def consensus(masks: list[AnnotationMask], level: float = 0.5) -> ConsensusMask | None:
    """pylidc's consensus: voxels that at least ``level`` of the given annotations include."""
    used = [m for m in masks if m.box.size]
    if not used:
        return None
    lo = np.min([m.offset_zyx for m in used], axis=0)
    hi = np.max([np.add(m.offset_zyx, m.box.shape) for m in used], axis=0)
    votes = np.zeros(tuple(hi - lo), dtype=np.uint8)
    for m in used:
        o = np.subtract(m.offset_zyx, lo)
        votes[tuple(slice(a, a + s) for a, s in zip(o, m.box.shape))] += m.box
    # pylidc: mean(masks) >= clevel, the mean taken over every annotation of the nodule
    box = votes >= level * len(masks) - 1e-9
    if level <= 0:
        box &= votes > 0
    return ConsensusMask(tuple(int(v) for v in lo), box, votes, used[0].grid)


@dataclass(frozen=True, eq=False)
class Nodule:
    """One physical nodule: the readers' annotations of it and their consensus."""

    index: int
    annotations: tuple[int, ...]
    """Indices into the annotation-mask list the nodules were clustered from."""
    readers: tuple[int, ...]
    nodule_ids: tuple[str, ...]
    level: float
    consensus: ConsensusMask | None
    diameter_mm: float | None
    """Mean over the readers of pylidc's diameter (None on the XML-only grid)."""
    volume_mm3: float | None
    """Consensus voxels times the voxel volume (None on the XML-only grid)."""
    centroid_zyx: tuple[float, float, float] | None
    """Centre of the consensus voxels (or of all outlined voxels if the consensus is empty)."""
    centroid_lps_mm: tuple[float, float, float] | None
    characteristics: dict[str, float]
    """Mean of each LIDC rating over the readers."""

    @property
    def n_readers(self) -> int:
        return len(self.readers)

    @property
    def consensus_voxels(self) -> int:
        return self.consensus.voxels if self.consensus is not None else 0

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "annotations": list(self.annotations),
            "readers": [r + 1 for r in self.readers],
            "nodule_ids": list(self.nodule_ids),
            "n_readers": self.n_readers,
            "level": self.level,
            "consensus_voxels": self.consensus_voxels,
            "diameter_mm": self.diameter_mm,
            "volume_mm3": self.volume_mm3,
            "centroid_zyx": self.centroid_zyx,
            "centroid_lps_mm": self.centroid_lps_mm,
            "characteristics": self.characteristics,
            "luna16": passes_luna16(self),
        }


def _centroid(masks: list[AnnotationMask], cons: ConsensusMask | None):
    if cons is not None and cons.voxels:
        idx = np.argwhere(cons.box) + np.asarray(cons.offset_zyx)
    else:
        parts = [np.argwhere(m.box) + np.asarray(m.offset_zyx) for m in masks if m.box.size]
        idx = np.concatenate(parts) if parts else np.zeros((0, 3))
    if len(idx) == 0:
        return None
    return tuple(float(v) for v in idx.mean(axis=0))


def build_nodules(
    masks: list[AnnotationMask], level: float = 0.5, tol_mm: float = DEFAULT_TOL_MM
) -> list[Nodule]:
    """Cluster the annotation masks into nodules and compute each nodule's consensus and facts."""
    groups = cluster_annotations(masks, tol_mm=tol_mm)
    return [make_nodule(n, group, masks, level) for n, group in enumerate(groups)]


def make_nodule(index: int, group, masks: list[AnnotationMask], level: float) -> Nodule:
    """Nodule ``index`` from the annotations ``group`` (indices into ``masks``) at ``level``.

    Clustering does not depend on the level, so a new level only needs this per nodule.
    """
    ms = [masks[i] for i in group]
    cons = consensus(ms, level)
    grid = ms[0].grid
    diams = [diameter_mm(m) for m in ms]
    diam = float(np.mean(diams)) if all(d is not None for d in diams) else None
    vol = None
    if grid.spacing_mm is not None and cons is not None:
        vol = float(cons.voxels * np.prod(grid.spacing_mm))
    cen = _centroid(ms, cons)
    lps = None
    if cen is not None and grid.ct is not None:
        lps = tuple(float(v) for v in grid.ct.index_to_lps(np.asarray(cen)))
    chars = {}
    for name in CHARACTERISTIC_NAMES:
        vals = [m.mark.characteristics[name] for m in ms if name in m.mark.characteristics]
        if vals:
            chars[name] = float(np.mean(vals))
    return Nodule(
        index=index,
        annotations=tuple(group),
        readers=tuple(masks[i].reader for i in group),
        nodule_ids=tuple(masks[i].nodule_id for i in group),
        level=float(level),
        consensus=cons,
        diameter_mm=diam,
        volume_mm3=vol,
        centroid_zyx=cen,
        centroid_lps_mm=lps,
        characteristics=chars,
    )


def passes_luna16(nodule: Nodule) -> bool:
    """LUNA16's rule: marked (as >= 3 mm) by at least 3 readers, and >= 3 mm where size is known."""
    if nodule.n_readers < LUNA16_MIN_READERS:
        return False
    return nodule.diameter_mm is None or nodule.diameter_mm >= LUNA16_MIN_DIAMETER_MM


def consensus_labels(nodules: list[Nodule], grid: SliceGrid, rule: str = "pylidc") -> np.ndarray:
    """A uint16 label volume on ``grid``: nodule ``i`` -> label ``i + 1`` (0 = background).

    ``rule="pylidc"`` keeps every nodule; ``rule="luna16"`` keeps those passing :func:`passes_luna16`.
    Where consensus boxes overlap, the lower-numbered nodule wins.
    """
    if rule not in ("pylidc", "luna16"):
        raise ValueError(f"unknown consensus rule {rule!r} (use 'pylidc' or 'luna16')")
    labels = np.zeros(grid.shape, dtype=np.uint16)
    for nod in reversed(nodules):
        if nod.consensus is None or (rule == "luna16" and not passes_luna16(nod)):
            continue
        view = labels[nod.consensus.slices]
        view[nod.consensus.box] = nod.index + 1
    return labels
