"""LidcMasks and annotate(): one XML read rasterised on a CT grid, clustered, with consensus."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from napari_lungkd.errors import LidcXmlError
from napari_lungkd.lidc.bounds import placement_warnings
from napari_lungkd.lidc.nodules import (
    Nodule,
    build_nodules,
    consensus_labels,
    make_nodule,
)
from napari_lungkd.lidc.parse import (
    LidcRead,
    read_lidc_xml,
)
from napari_lungkd.lidc.raster import (
    AnnotationMask,
    SliceGrid,
    grid_for_ct,
    rasterise_read,
    reader_label_volumes,
    xml_grid,
)


@dataclass(frozen=True, eq=False)
class LidcMasks:
    """Everything one XML gives on one grid: per-annotation masks, nodules and their consensus."""

    read: LidcRead
    grid: SliceGrid
    annotations: tuple[AnnotationMask, ...]
    nodules: tuple[Nodule, ...]
    level: float
    include_edges: bool
    tol_mm: float
    warnings: tuple[str, ...] = field(default=())

    def at_level(self, level: float) -> LidcMasks:
        """The same annotations and nodule clusters with the consensus at another ``level``.

        Only each nodule's consensus (and the facts derived from it) is recomputed: the XML is
        not read again and no outline is rasterised again.
        """
        level = _check_level(level)
        if level == self.level:
            return self
        nodules = tuple(
            make_nodule(n.index, n.annotations, list(self.annotations), level) for n in self.nodules
        )
        return replace(self, nodules=nodules, level=level)

    def reader_volumes(self) -> list[np.ndarray]:
        """One uint8 ``(z, y, x)`` mask per reading session (1 = outlined by that reader)."""
        return reader_label_volumes(self.annotations, self.grid, self.read.n_readers)

    def consensus_labels(self, rule: str = "pylidc") -> np.ndarray:
        """uint16 labels: nodule ``i`` -> ``i + 1`` (``rule`` "pylidc": all, "luna16": >= 3 readers)."""
        return consensus_labels(list(self.nodules), self.grid, rule=rule)

    def consensus_mask(self, rule: str = "pylidc") -> np.ndarray:
        """uint8 ``(z, y, x)``: 1 where any kept nodule's consensus is."""
        return (self.consensus_labels(rule) > 0).astype(np.uint8)

    def to_dict(self) -> dict:
        """The JSON document of ``lungkd lidc`` (annotations, nodules, grid, provenance).

        Readers are numbered from 1 in file order; a nodule's ``annotations`` are 0-based indices
        into ``annotations``; ``voxels_per_z`` is keyed by the slice z in mm (as text).
        """
        from napari_lungkd import __version__

        anns = []
        for m in self.annotations:
            anns.append(
                {
                    "reader": m.reader + 1,
                    "nodule_id": m.nodule_id,
                    "voxels": m.voxels,
                    "voxels_per_z": {f"{z:.10g}": c for z, c in sorted(m.voxels_per_z().items())},
                    "characteristics": dict(m.mark.characteristics),
                    "n_rois": len(m.mark.rois),
                    "warnings": list(m.warnings),
                }
            )
        g = self.grid
        return {
            "xml": self.read.source,
            "series_uid": self.read.series_uid,
            "n_readers": self.read.n_readers,
            "grid": {
                "kind": g.kind,
                "shape_zyx": list(g.shape),
                "spacing_mm": list(g.spacing_mm) if g.spacing_mm else None,
                "source": getattr(g.ct, "source", None),
            },
            "settings": {
                "level": self.level,
                "include_edges": self.include_edges,
                "cluster_tol_mm": self.tol_mm,
            },
            "annotations": anns,
            "nodules": [n.to_dict() for n in self.nodules],
            "small_nodules": [
                {"reader": s.index + 1, "nodule_id": n.nodule_id, "xyz": n.point_xyz}
                for s in self.read.sessions
                for n in s.small_nodules
            ],
            "non_nodules": [
                {"reader": s.index + 1, "id": m.non_nodule_id, "x": m.x, "y": m.y, "z_mm": m.z_mm}
                for s in self.read.sessions
                for m in s.non_nodules
            ],
            "warnings": list(self.warnings),
            "provenance": {"package": "napari-lungkd", "version": __version__},
        }


def _check_level(level: float) -> float:
    if not 0.0 < level <= 1.0:
        raise ValueError(f"consensus level must be in (0, 1], not {level}")
    return float(level)


def annotate(
    xml_or_read,
    ct=None,
    level: float = 0.5,
    include_edges: bool = False,
    tol_mm: float = 3.0,
) -> LidcMasks:
    """Read (if needed), rasterise on ``ct``'s grid (or the XML-only grid), cluster, build consensus."""
    read = xml_or_read if isinstance(xml_or_read, LidcRead) else read_lidc_xml(xml_or_read)
    level = _check_level(level)
    warnings = []
    if ct is not None:
        grid = grid_for_ct(ct)
        if read.series_uid and ct.series_uid and read.series_uid != ct.series_uid:
            raise LidcXmlError(
                f"{read.source}: annotates series {read.series_uid}, but the CT is series "
                f"{ct.series_uid}."
            )
    else:
        grid = xml_grid(read)
    warnings.extend(grid.warnings)
    warnings.extend(read.warnings)
    warnings.extend(placement_warnings(read, grid))
    masks = rasterise_read(read, grid, include_edges=include_edges)
    for m in masks:
        warnings.extend(m.warnings)
    nodules = build_nodules(masks, level=level, tol_mm=tol_mm)
    return LidcMasks(
        read=read,
        grid=grid,
        annotations=tuple(masks),
        nodules=tuple(nodules),
        level=float(level),
        include_edges=bool(include_edges),
        tol_mm=float(tol_mm),
        warnings=tuple(warnings),
    )
