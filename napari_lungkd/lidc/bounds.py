"""Bounds on what one LIDC XML may make us draw, and warnings about where its outlines went.

A crafted XML can hold outlines far outside any CT (coordinates of 1e8), thousands of nodules or
outlines that would take minutes and gigabytes to fill. :func:`where_on_grid` sorts each outline
(drawn, drawn clipped, or dropped), :func:`raster_work` counts the pixels a file would need before
any is filled, and :func:`placement_warnings` says when outlines were placed on a CT by z alone.
"""

from __future__ import annotations

import numpy as np

from napari_lungkd.lidc.parse import LidcRead


def outline_length(points_xy: np.ndarray) -> int:
    """How many lattice pixels :func:`outline_pixels` gives (without making them)."""
    pts = np.asarray(points_xy, dtype=np.int64)
    if len(pts) == 0:
        return 0
    d = np.roll(pts, -1, axis=0) - pts
    return int(np.maximum(np.gcd(np.abs(d[:, 0]), np.abs(d[:, 1])), 1).sum())


def where_on_grid(points_xy: np.ndarray, shape_yx) -> str:
    """``"inside"``: every edge point in the image or one pixel beyond it (edge points lie just
    outside the nodule); ``"partly"``: some further out, but within one image size of it (drawn
    clipped); ``"far"``: beyond that (dropped: no CT outline is there, and drawing it would cost
    time and memory in proportion to its size)."""
    x, y = points_xy[:, 0], points_xy[:, 1]
    ny, nx = shape_yx
    if x.min() >= -1 and x.max() <= nx and y.min() >= -1 and y.max() <= ny:
        return "inside"
    if x.min() >= -nx and x.max() <= 2 * nx and y.min() >= -ny and y.max() <= 2 * ny:
        return "partly"
    return "far"


MAX_ANNOTATIONS = 2000
"""The most large-nodule annotations one XML may hold (real reads: at most ~200); clustering
them compares nearby pairs, about 2 s for 2,000."""
MAX_RASTER_PIXELS = 400_000_000
"""The most pixels (ROI bounding boxes plus outline lattice points) one XML may make us fill: real
files need well under a million; a crafted one is refused instead of taking minutes or gigabytes."""


def raster_work(read: LidcRead, shape_yx) -> int:
    """Pixels :func:`rasterise_read` would touch (boxes clipped to the image, outline points)."""
    ny, nx = shape_yx
    work = 0
    for _, mark in read.annotations():
        for roi in mark.outline_rois:
            p = roi.points_xy
            if where_on_grid(p, shape_yx) == "far":
                continue
            h = min(int(p[:, 1].max()) + 1, ny) - max(int(p[:, 1].min()), 0)
            w = min(int(p[:, 0].max()) + 1, nx) - max(int(p[:, 0].min()), 0)
            work += max(h, 0) * max(w, 0) + min(outline_length(p), 4 * (ny + nx) * len(p))
    return work


def placement_warnings(read: LidcRead, grid) -> list[str]:
    """A warning when the XML's outlines were placed on a CT by z alone: the XML names no series
    (or the CT has none) and none of its SOP UIDs is a slice of the CT, so nothing shows that the
    XML belongs to this CT; or some outlines name SOP UIDs the CT does not have."""
    if grid.kind != "ct":
        return []
    rois = [r for _, mark in read.annotations() for r in mark.outline_rois]
    if not rois:
        return []
    by_uid = sum(1 for r in rois if r.sop_uid and r.sop_uid in grid._uid_index)
    named = sum(1 for r in rois if r.sop_uid)
    same_series = bool(read.series_uid and grid.series_uid and read.series_uid == grid.series_uid)
    if by_uid == 0 and not same_series:
        why = "the CT has no SOP UIDs" if not grid._uid_index else "none of them is a CT slice"
        return [
            f"{read.source}: no series UID ties this XML to the CT and {why}: its {len(rois)} "
            "outline(s) were placed by z alone; check that the XML belongs to this CT"
        ]
    if named > by_uid and grid._uid_index:
        return [
            f"{read.source}: {named - by_uid} of {len(rois)} outline(s) name SOP UIDs that are "
            "not slices of this CT; they were placed on the slice nearest their z"
        ]
    return []
