"""Rasterise LIDC outlines into voxel masks on a CT's grid, or on the XML's own 512x512 grid.

Semantics (those of pylidc's ``Annotation.boolean_mask``, see its issue #15):

* TCIA's edge points are the first pixels *outside* the nodule, so by default the mask is the
  polygon's strict interior: every lattice point that lies on the outline (the edge points and
  any pixel exactly on a straight run between them, including the closing segment of an open
  contour) is left out. ``include_edges=True`` keeps every outline pixel as well. (pylidc's
  ``include_contour_points=True`` keeps only some of them - matplotlib's point-in-path test
  counts boundary points on one side only - so its counts depend on the drawing direction; with
  edges excluded, the default, our counts equal pylidc's on the real files.)
* Several inclusion ROIs on one slice are OR-ed; ``inclusion=FALSE`` ROIs are then cut out
  (their outline pixels are always outside: they are the first pixels of the hole).
* ROIs of a single edge point are stray marks and are ignored, as pylidc does (a small nodule's
  one point is kept by :class:`~napari_lungkd.lidc.parse.NoduleMark` as ``point_xyz``).
* Each ROI goes to the slice whose SOPInstanceUID it names; if the grid has no such UID, to the
  slice with the nearest z within half a slice; otherwise it is dropped with a warning.

Every ROI is filled in its own bounding box only (``skimage.draw.polygon``), so rasterising a
whole file costs milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_lungkd.lidc.bounds import (
    MAX_ANNOTATIONS,
    MAX_RASTER_PIXELS,
    raster_work,
    where_on_grid,
)
from napari_lungkd.lidc.parse import LidcRead, NoduleMark, Roi

XML_GRID_SHAPE_YX = (512, 512)


@dataclass(frozen=True, eq=False)
class SliceGrid:
    """Where the masks live: per-slice z and SOP UIDs, the in-plane shape and spacing."""

    z_positions_mm: np.ndarray
    """z of each slice, in slice (array) order."""
    shape_yx: tuple[int, int]
    sop_uids: tuple[str | None, ...] | None = None
    spacing_mm: tuple[float, float, float] | None = None
    """(z, y, x) voxel size; ``None`` on the XML-only grid, whose pixel size is unknown."""
    kind: str = "ct"
    """``"ct"`` (a loaded CtVolume) or ``"xml"`` (the XML's own z values, 512x512 pixels)."""
    series_uid: str | None = None
    warnings: tuple[str, ...] = ()
    ct: object | None = None
    """The CtVolume the grid was made from (None on the XML-only grid)."""
    _uid_index: dict = field(default_factory=dict, repr=False)
    _z_sorted: np.ndarray | None = field(default=None, repr=False)
    _z_order: np.ndarray | None = field(default=None, repr=False)
    _step_mm: float | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.z_positions_mm), *self.shape_yx)

    @property
    def slice_step_mm(self) -> float:
        """The typical distance between neighbouring slices (median of the z steps)."""
        if self._step_mm is not None:
            return self._step_mm
        return _step(np.sort(_finite(self.z_positions_mm)), self.spacing_mm)

    def slice_of(self, roi_z_mm: float, sop_uid: str | None) -> tuple[int | None, str]:
        """The slice index for an ROI and how it was found (``"uid"``, ``"z"`` or ``"miss"``).

        O(log n): the sorted z are computed once per grid (100,000 ROIs take well under a second).
        """
        if sop_uid and sop_uid in self._uid_index:
            return self._uid_index[sop_uid], "uid"
        if self._z_sorted is None:  # a grid built by hand, not by _make_grid
            z = np.asarray(self.z_positions_mm, dtype=float)
            order = np.argsort(z, kind="stable")
            object.__setattr__(self, "_z_order", order)
            object.__setattr__(self, "_z_sorted", z[order])
        zs, order = self._z_sorted, self._z_order
        if zs.size == 0 or not np.isfinite(roi_z_mm):
            return None, "miss"
        i = int(np.searchsorted(zs, roi_z_mm))
        near = [j for j in (i - 1, i) if 0 <= j < zs.size]
        j = min(near, key=lambda j: abs(zs[j] - roi_z_mm))
        if abs(zs[j] - roi_z_mm) <= 0.5 * abs(self.slice_step_mm) + 1e-3:
            return int(order[j]), "z"
        return None, "miss"


def _finite(z) -> np.ndarray:
    z = np.asarray(z, dtype=float)
    return z[np.isfinite(z)]


def _step(z_sorted: np.ndarray, spacing_mm) -> float:
    if z_sorted.size < 2:
        return float(spacing_mm[0]) if spacing_mm else 1.0
    return float(np.median(np.diff(z_sorted)))


def _make_grid(z, shape_yx, sop_uids, spacing_mm, kind, series_uid, warnings=(), ct=None):
    index = {u: i for i, u in enumerate(sop_uids or ()) if u}
    z = np.asarray(z, dtype=float)
    order = np.argsort(z, kind="stable")
    z_sorted = z[order]
    return SliceGrid(
        z_positions_mm=z,
        shape_yx=(int(shape_yx[0]), int(shape_yx[1])),
        sop_uids=tuple(sop_uids) if sop_uids is not None else None,
        spacing_mm=tuple(float(s) for s in spacing_mm) if spacing_mm is not None else None,
        kind=kind,
        series_uid=series_uid,
        warnings=tuple(warnings),
        ct=ct,
        _uid_index=index,
        _z_sorted=z_sorted,
        _z_order=order,
        _step_mm=_step(z_sorted[np.isfinite(z_sorted)], spacing_mm),
    )


def grid_for_ct(ct) -> SliceGrid:
    """The slice grid of a :class:`~napari_lungkd.ct.CtVolume` (per-slice z from its geometry)."""
    warnings = []
    if ct.z_positions_mm is not None and len(ct.z_positions_mm) == ct.shape[0]:
        z = np.asarray(ct.z_positions_mm, dtype=float)
    else:
        idx = np.zeros((ct.shape[0], 3))
        idx[:, 0] = np.arange(ct.shape[0])
        z = ct.index_to_lps(idx)[:, 2]
    d = np.asarray(ct.direction, dtype=float)
    if not np.allclose(d[:2, :2], np.eye(2), atol=1e-3):
        warnings.append(
            "the CT's rows/columns are not patient-aligned (direction is not identity in-plane); "
            "LIDC edge points are placed as stored row/column indices"
        )
    return _make_grid(
        z, ct.shape[1:], ct.sop_uids, ct.spacing_mm, "ct", ct.series_uid, warnings, ct=ct
    )


def xml_grid(read: LidcRead, shape_yx=XML_GRID_SHAPE_YX) -> SliceGrid:
    """A grid made from the XML alone: its sorted unique z values, 512x512 pixels, size unknown."""
    z = read.z_positions_mm()
    by_z = read.sop_uid_by_z()
    return _make_grid(
        z,
        shape_yx,
        [by_z.get(float(v)) for v in z],
        None,
        "xml",
        read.series_uid,
        warnings=(
            "no CT: masks use the XML's own z values on a 512x512 grid of unknown pixel size",
        ),
    )


# --------------------------------------------------------------------------------------------
# polygons


def outline_pixels(points_xy: np.ndarray) -> np.ndarray:
    """Every lattice pixel ``(row, col)`` lying exactly on the closed outline through the points."""
    pts = np.asarray(points_xy, dtype=np.int64)
    if len(pts) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    d = np.roll(pts, -1, axis=0) - pts
    g = np.maximum(np.gcd(np.abs(d[:, 0]), np.abs(d[:, 1])), 1)  # lattice steps per segment
    seg = np.repeat(np.arange(len(pts)), g)
    t = np.arange(int(g.sum())) - np.repeat(np.cumsum(g) - g, g)  # 0 .. g-1 within each
    xy = pts[seg] + t[:, None] * (d // g[:, None])[seg]
    return xy[:, ::-1]


def fill_roi(points_xy: np.ndarray, box_shape: tuple[int, int], origin_yx, include_edges: bool):
    """Boolean ``box_shape`` image of one ROI's polygon, placed with ``origin_yx`` at [0, 0].

    Without ``include_edges`` the outline pixels are False (strict interior); with it, True.
    """
    from skimage.draw import polygon

    img = np.zeros(box_shape, dtype=bool)
    pts = np.asarray(points_xy, dtype=np.int64)
    rows = pts[:, 1] - origin_yx[0]
    cols = pts[:, 0] - origin_yx[1]
    if len(pts) >= 3:
        rr, cc = polygon(rows, cols, shape=box_shape)
        img[rr, cc] = True
    edge = outline_pixels(pts) - np.asarray(origin_yx)
    ok = (edge[:, 0] >= 0) & (edge[:, 0] < box_shape[0]) & (edge[:, 1] >= 0)
    ok &= edge[:, 1] < box_shape[1]
    img[edge[ok, 0], edge[ok, 1]] = include_edges
    return img


@dataclass(frozen=True, eq=False)
class AnnotationMask:
    """One reader's outline of one nodule as voxels: a small box placed at ``offset_zyx``."""

    reader: int
    nodule_id: str
    offset_zyx: tuple[int, int, int]
    box: np.ndarray
    """bool ``(dz, dy, dx)``."""
    grid: SliceGrid
    mark: NoduleMark
    warnings: tuple[str, ...] = ()

    @property
    def voxels(self) -> int:
        return int(self.box.sum())

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(o, o + s) for o, s in zip(self.offset_zyx, self.box.shape))  # type: ignore[return-value]

    def voxels_per_z(self) -> dict[float, int]:
        """Voxel count per slice z (mm), for slices holding any voxel."""
        counts = self.box.sum(axis=(1, 2))
        z0 = self.offset_zyx[0]
        return {float(self.grid.z_positions_mm[z0 + i]): int(c) for i, c in enumerate(counts) if c}

    def to_volume(self) -> np.ndarray:
        """The mask on the whole grid (bool ``grid.shape``)."""
        vol = np.zeros(self.grid.shape, dtype=bool)
        vol[self.slices] |= self.box
        return vol

    def points_zyx(self) -> np.ndarray:
        """All edge points as ``(slice, row, col)`` indices (those on the grid)."""
        rows = []
        for roi in self.mark.outline_rois or self.mark.rois:
            k, _ = self.grid.slice_of(roi.z_mm, roi.sop_uid)
            if k is None:
                continue
            p = roi.points_xy
            rows.append(np.c_[np.full(len(p), k), p[:, 1], p[:, 0]])
        return np.concatenate(rows) if rows else np.zeros((0, 3), dtype=np.int64)


def _place(rois: list[tuple[int, Roi]], grid: SliceGrid):
    pts = np.concatenate([r.points_xy for _, r in rois])
    ny, nx = grid.shape_yx
    y0, y1 = max(int(pts[:, 1].min()), 0), min(int(pts[:, 1].max()) + 1, ny)
    x0, x1 = max(int(pts[:, 0].min()), 0), min(int(pts[:, 0].max()) + 1, nx)
    ks = [k for k, _ in rois]
    return (min(ks), max(ks) + 1), (y0, max(y1, y0)), (x0, max(x1, x0))


def rasterise_annotation(
    mark: NoduleMark, grid: SliceGrid, reader: int = 0, include_edges: bool = False
) -> AnnotationMask:
    """Fill one nodule annotation's ROIs on ``grid`` (see the module docstring for the rules)."""
    warnings: list[str] = []
    placed: list[tuple[int, Roi]] = []
    misses = outside = clipped = 0
    for roi in mark.outline_rois:  # one-point ROIs in an outlined nodule are stray marks (pylidc)
        k, how = grid.slice_of(roi.z_mm, roi.sop_uid)
        if k is None:
            misses += 1
            continue
        where = where_on_grid(roi.points_xy, grid.shape_yx)
        if where == "far":
            outside += 1
            continue
        clipped += where == "partly"
        placed.append((k, roi))
    who = f"reader {reader + 1}, nodule {mark.nodule_id!r}"
    if misses:
        warnings.append(
            f"{who}: {misses} outline(s) at z with no slice within half a slice on this grid "
            "were dropped"
        )
    ny, nx = grid.shape_yx
    if outside:
        warnings.append(
            f"{who}: {outside} outline(s) with edge points far outside the {nx} x {ny} image "
            "were dropped"
        )
    if clipped:
        warnings.append(
            f"{who}: {clipped} outline(s) reach beyond the {nx} x {ny} image; only the part "
            "inside it was drawn"
        )
    if not placed:
        box = np.zeros((0, 0, 0), dtype=bool)
        return AnnotationMask(reader, mark.nodule_id, (0, 0, 0), box, grid, mark, tuple(warnings))
    (z0, z1), (y0, y1), (x0, x1) = _place(placed, grid)
    box = np.zeros((z1 - z0, y1 - y0, x1 - x0), dtype=bool)
    shape2 = box.shape[1:]
    for k, roi in placed:  # inclusion first, each ROI OR-ed into its slice
        if roi.inclusion:
            box[k - z0] |= fill_roi(roi.points_xy, shape2, (y0, x0), include_edges)
    for k, roi in placed:  # then the holes, whose outline pixels are outside the nodule
        if not roi.inclusion:
            box[k - z0] &= ~fill_roi(roi.points_xy, shape2, (y0, x0), include_edges=True)
    return AnnotationMask(reader, mark.nodule_id, (z0, y0, x0), box, grid, mark, tuple(warnings))


def rasterise_read(read: LidcRead, grid: SliceGrid, include_edges: bool = False):
    """Masks of every large-nodule annotation in the file, in file order (reader, then nodule).

    Refuses (:class:`~napari_lungkd.errors.LidcXmlError`) a file whose outlines would need more
    than :data:`MAX_RASTER_PIXELS` pixels filled."""
    from napari_lungkd.errors import LidcXmlError

    n_marks = len(read.annotations())
    if n_marks > MAX_ANNOTATIONS:
        raise LidcXmlError(
            f"{read.source}: it holds {n_marks:,} nodule outlines, more than the "
            f"{MAX_ANNOTATIONS:,} allowed (real LIDC reads hold at most a few hundred); not drawn."
        )
    work = raster_work(read, grid.shape_yx)
    if work > MAX_RASTER_PIXELS:
        raise LidcXmlError(
            f"{read.source}: its outlines would fill {work:,} pixels, more than the "
            f"{MAX_RASTER_PIXELS:,} allowed (real LIDC reads need under a million); not drawn."
        )
    return [
        rasterise_annotation(mark, grid, reader=reader, include_edges=include_edges)
        for reader, mark in read.annotations()
    ]


def reader_label_volumes(masks, grid: SliceGrid, n_readers: int) -> list[np.ndarray]:
    """One uint8 volume per reader: 1 wherever that reader outlined any nodule."""
    vols = [np.zeros(grid.shape, dtype=np.uint8) for _ in range(n_readers)]
    for m in masks:
        if m.box.size:
            vols[m.reader][m.slices] |= m.box.astype(np.uint8)
    return vols
