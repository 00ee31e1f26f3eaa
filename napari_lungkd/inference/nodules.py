"""From a binary mask to a nodule table: what a nodule is, once, for the table, the CSV, the
labelled mask (nodule ``i`` of the table is label ``i + 1``), the DICOM-SEG segments and the scores.

A nodule is a group of 26-connected pieces of the mask that belong together
(:func:`~napari_lungkd.inference.pieces.group_pieces`: pieces within 3 mm of each other, and the
top and bottom of one object whose middle the model missed). Per nodule: centroid (voxel and mm),
bounding box, volume (mm³), longest axial diameter (mm: the largest in-plane Feret diameter over
the nodule's slices, what a radiologist measures with calipers on the axial slice where it looks
largest), mean HU, max probability, slice count, pieces, elongation and flatness, and a
plausibility flag (:func:`~napari_lungkd.inference.plausibility.plausibility`).

Nodules smaller than ``min_volume_mm3`` are dropped. The default, 4.2 mm³, is the volume of a
2 mm sphere: below that a blob is 3-4 voxels of a typical 0.7 x 0.7 x 2.5 mm CT, noise rather than
anything a reader could mark (LIDC readers outline nodules from 3 mm; smaller ones get a point).
Pieces are 26-connected (touching by a corner counts), so a thin oblique vessel-like strand is
one object, not many.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, replace

import numpy as np

from napari_lungkd.files import atomic_path
from napari_lungkd.inference.pieces import MERGE_GAP_MM, STACKED_MIN_OVERLAP, group_pieces
from napari_lungkd.inference.plausibility import plausibility

DEFAULT_MIN_VOLUME_MM3 = 4.2


@dataclass(frozen=True)
class Nodule:
    """One connected component of a mask, measured."""

    label: int
    centroid_zyx: tuple[float, float, float]
    """Voxel coordinates (z, y, x) of the centre of mass."""
    centroid_mm: tuple[float, float, float]
    """``centroid_zyx * spacing_mm``: (z, y, x) mm from the centre of voxel [0, 0, 0]."""
    bbox: tuple[int, int, int, int, int, int]
    """``(z0, y0, x0, z1, y1, x1)`` half-open voxel box."""
    volume_mm3: float
    diameter_mm: float
    """Longest axial diameter: max in-plane Feret diameter over the nodule's slices."""
    n_voxels: int
    n_slices: int
    mean_hu: float | None = None
    max_probability: float | None = None
    centroid_lps_mm: tuple[float, float, float] | None = None
    """Patient LPS (x, y, z) of the centroid when the CT geometry was given."""
    score: float | None = None
    """Nodule probability from the false-positive classifier (None when it did not run)."""
    n_pieces: int = 1
    """26-connected pieces of the mask merged into this nodule (:mod:`.pieces`)."""
    elongation: float | None = None
    """sqrt(minor / major eigenvalue) of the physical-space covariance (pyradiomics; 1 = round,
    near 0 = a tube)."""
    flatness: float | None = None
    """sqrt(least / major eigenvalue) (pyradiomics; 1 = round, near 0 = thin across its length:
    a sheet, a tube, a mark on one slice)."""

    @property
    def centre_slice(self) -> int:
        return int(round(self.centroid_zyx[0]))

    @property
    def flag(self) -> str:
        """Why this is implausible as a nodule ("" when it is not): :func:`.plausibility`."""
        return plausibility(self)


def feret_diameter_mm(mask_2d: np.ndarray, spacing_yx) -> float:
    """Largest distance between two points of a 2-D pixel set (pixels as squares), in mm."""
    m = np.asarray(mask_2d, dtype=bool)
    has = m.any(axis=1)
    if not has.any():
        return 0.0
    # the convex hull of a pixel set is the hull of each row's leftmost and rightmost pixel corners
    r = np.flatnonzero(has).astype(np.float64)
    left = m[has].argmax(axis=1).astype(np.float64) - 0.5
    right = (m.shape[1] - 1 - m[has][:, ::-1].argmax(axis=1)).astype(np.float64) + 0.5
    pts = np.concatenate(
        [
            np.stack([r - 0.5, left], 1),
            np.stack([r + 0.5, left], 1),
            np.stack([r - 0.5, right], 1),
            np.stack([r + 0.5, right], 1),
        ]
    ) * np.asarray(spacing_yx, dtype=np.float64)
    if len(pts) > 64:
        from scipy.spatial import ConvexHull, QhullError

        try:
            pts = pts[ConvexHull(pts).vertices]
        except QhullError:  # all points on a line
            pass
    d = pts[:, None, :] - pts[None, :, :]
    return float(np.sqrt((d * d).sum(-1)).max())


def find_nodules(
    mask: np.ndarray,
    spacing_mm,
    hu: np.ndarray | None = None,
    probability: np.ndarray | None = None,
    min_volume_mm3: float = DEFAULT_MIN_VOLUME_MM3,
    ct=None,
) -> list[Nodule]:
    """The nodules of ``mask`` (z, y, x) as :class:`Nodule` records, largest first
    (:func:`label_nodules` without the label volume)."""
    return label_nodules(mask, spacing_mm, hu, probability, min_volume_mm3, ct)[0]


def label_nodules(
    mask: np.ndarray,
    spacing_mm,
    hu: np.ndarray | None = None,
    probability: np.ndarray | None = None,
    min_volume_mm3: float = DEFAULT_MIN_VOLUME_MM3,
    ct=None,
    merge_gap_mm: float = MERGE_GAP_MM,
    stacked_overlap: float | None = STACKED_MIN_OVERLAP,
) -> tuple[list[Nodule], np.ndarray]:
    """``(nodules, labels)``: the nodules of ``mask`` (z, y, x), largest first, and the uint16
    label volume where nodule ``i`` of the list is label ``i + 1`` (nodules below
    ``min_volume_mm3`` are in neither).

    ``ct`` (a CtVolume), when given, adds each centroid's patient LPS position. ``merge_gap_mm`` and
    ``stacked_overlap`` are the two rules of :func:`~napari_lungkd.inference.pieces.group_pieces`
    (``0`` and None: every 26-connected component is a nodule of its own).
    """
    from scipy import ndimage

    mask = np.asarray(mask) > 0
    spacing = tuple(float(s) for s in spacing_mm)
    full_shape = mask.shape
    if hu is not None and np.shape(hu) != full_shape:
        raise ValueError(f"hu has shape {np.shape(hu)}, the mask {full_shape}")
    if probability is not None and np.shape(probability) != full_shape:
        raise ValueError(f"probability has shape {np.shape(probability)}, the mask {full_shape}")
    out = np.zeros(full_shape, dtype=np.uint16)
    box = _bounding_box(mask)
    if box is None:
        return [], out
    offset = tuple(b.start for b in box)
    mask = mask[box]
    hu = None if hu is None else np.asarray(hu)[box]
    probability = None if probability is None else np.asarray(probability)[box]
    labels, n, pieces = group_pieces(mask, spacing, merge_gap_mm, stacked_overlap)
    voxel_mm3 = spacing[0] * spacing[1] * spacing[2]
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    nodules: list[Nodule] = []
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        volume = float(counts[lab]) * voxel_mm3
        if volume < min_volume_mm3:
            continue
        sub = labels[sl] == lab
        zz, yy, xx = np.nonzero(sub)
        start = tuple(a.start + o for a, o in zip(sl, offset))  # in the full volume
        stop = tuple(a.stop + o for a, o in zip(sl, offset))
        centroid = (zz.mean() + start[0], yy.mean() + start[1], xx.mean() + start[2])
        on_slices = np.flatnonzero(sub.any(axis=(1, 2)))
        diameter = max(feret_diameter_mm(sub[k], spacing[1:]) for k in on_slices)
        elongation, flatness = shape_ratios(np.stack([zz, yy, xx], axis=1), spacing)
        mean_hu = float(hu[sl][sub].mean()) if hu is not None else None
        max_p = float(probability[sl][sub].max()) if probability is not None else None
        lps = (
            tuple(float(v) for v in ct.index_to_lps(np.asarray(centroid)))
            if ct is not None
            else None
        )
        nodules.append(
            Nodule(
                label=lab,  # the group's label for now; renumbered below
                centroid_zyx=tuple(float(c) for c in centroid),
                centroid_mm=tuple(float(c * s) for c, s in zip(centroid, spacing)),
                bbox=(*start, *stop),
                volume_mm3=volume,
                diameter_mm=diameter,
                n_voxels=int(counts[lab]),
                n_slices=int(on_slices.size),
                mean_hu=mean_hu,
                max_probability=max_p,
                centroid_lps_mm=lps,
                n_pieces=int(pieces[lab]),
                elongation=elongation,
                flatness=flatness,
            )
        )
    nodules.sort(key=lambda nd: -nd.volume_mm3)
    relabel = np.zeros(n + 1, dtype=np.uint16)
    for i, nd in enumerate(nodules, start=1):
        relabel[nd.label] = i
    out[box] = relabel[labels]
    return [replace(nd, label=i) for i, nd in enumerate(nodules, start=1)], out


def shape_ratios(voxels: np.ndarray, spacing) -> tuple[float, float]:
    """``(elongation, flatness)`` of voxel indices ``(n, 3)``: pyradiomics' square roots of the
    minor / major and least / major eigenvalues of the physical-space covariance, each voxel a
    uniform box (so a single voxel or a single slice has a thickness), as the candidates measure."""
    spacing = np.asarray(spacing, dtype=np.float64)
    pts = np.asarray(voxels, dtype=np.float64) * spacing
    cov = np.cov(pts.T) if len(pts) > 1 else np.zeros((3, 3))
    cov = cov + np.diag(spacing**2 / 12.0)
    ev = np.sort(np.clip(np.linalg.eigvalsh(cov), 1e-12, None))[::-1]
    return float(np.sqrt(ev[1] / ev[0])), float(np.sqrt(ev[2] / ev[0]))


def _bounding_box(mask: np.ndarray):
    """Slices of the smallest box holding every True voxel (None when there is none)."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=others))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def largest_section_z(nodule: Nodule, *masks: np.ndarray) -> int:
    """The slice (z index) inside ``nodule``'s bounding box where the masks, together, hold the
    most voxels: the slice that shows the nodule best. The centroid's slice can cut a cavity or
    a gap between slices and show almost nothing; with no voxels at all it is the answer."""
    z0, y0, x0, z1, y1, x1 = (int(v) for v in nodule.bbox)
    area = np.zeros(max(z1 - z0, 0), dtype=np.int64)
    for mask in masks:
        area += (np.asarray(mask)[z0:z1, y0:y1, x0:x1] > 0).sum(axis=(1, 2))
    if area.size == 0 or not area.any():
        return int(round(nodule.centroid_zyx[0]))
    return z0 + int(np.argmax(area))


COLUMNS = (
    "label",
    "volume_mm3",
    "diameter_mm",
    "n_slices",
    "n_voxels",
    "mean_hu",
    "max_probability",
    "score",
    "flag",
    "n_pieces",
    "centroid_z",
    "centroid_y",
    "centroid_x",
    "centroid_lps_x_mm",
    "centroid_lps_y_mm",
    "centroid_lps_z_mm",
    "bbox_z0",
    "bbox_y0",
    "bbox_x0",
    "bbox_z1",
    "bbox_y1",
    "bbox_x1",
)


def nodules_to_rows(nodules: list[Nodule]) -> list[dict]:
    """Flat dicts (one per nodule, keys :data:`COLUMNS`) for CSV, JSON and tables."""
    rows = []
    for nd in nodules:
        d = asdict(nd)
        lps = nd.centroid_lps_mm or (None, None, None)
        row = {
            "label": nd.label,
            "volume_mm3": round(nd.volume_mm3, 2),
            "diameter_mm": round(nd.diameter_mm, 2),
            "n_slices": nd.n_slices,
            "n_voxels": nd.n_voxels,
            "mean_hu": None if d["mean_hu"] is None else round(d["mean_hu"], 1),
            "max_probability": None
            if d["max_probability"] is None
            else round(d["max_probability"], 4),
            "score": _score_cell(nd.score),
            "flag": nd.flag,
            "n_pieces": nd.n_pieces,
            "centroid_z": round(nd.centroid_zyx[0], 2),
            "centroid_y": round(nd.centroid_zyx[1], 2),
            "centroid_x": round(nd.centroid_zyx[2], 2),
            "centroid_lps_x_mm": None if lps[0] is None else round(lps[0], 2),
            "centroid_lps_y_mm": None if lps[1] is None else round(lps[1], 2),
            "centroid_lps_z_mm": None if lps[2] is None else round(lps[2], 2),
        }
        for k, v in zip(COLUMNS[-6:], nd.bbox):
            row[k] = int(v)
        rows.append(row)
    return rows


def _score_cell(score):
    """The classifier's score rounded; None (an empty cell, JSON null) when absent or NaN."""
    if score is None or not np.isfinite(score):
        return None
    return round(float(score), 4)


def write_nodules_csv(path, nodules: list[Nodule], overwrite: bool = True) -> None:
    """Write the nodule table as CSV (header always present, even with no nodule), atomically."""
    from napari_lungkd.errors import ExportError

    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(COLUMNS))
                w.writeheader()
                for row in nodules_to_rows(nodules):
                    w.writerow({k: "" if v is None else v for k, v in row.items()})
    except FileExistsError:
        raise ExportError(f"{path} already exists; pass overwrite=True to replace it.") from None
    except OSError as exc:
        raise ExportError(f"{path} could not be written ({exc.strerror or exc}).") from None
