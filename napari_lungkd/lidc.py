"""LIDC-IDRI reader annotations: parse the XML, rasterise the outlines, cluster, build consensus.

The work is split by noun; this module gathers the public names:

Parsing (:mod:`napari_lungkd.lidc_xml`)
    ``read_lidc_xml(path)`` -> :class:`LidcRead` (path, ``bytes`` or a binary file object);
    ``parse_lidc_xml(source, name=None)`` the same with a label for error messages;
    dataclasses ``LidcRead`` -> ``ReadingSession`` (``nodules``, ``large_nodules``,
    ``small_nodules``, ``non_nodules``) -> ``NoduleMark`` (``characteristics``, ``rois``,
    ``is_large``, ``point_xyz``) -> ``Roi`` (``z_mm``, ``sop_uid``, ``inclusion``, ``points_xy``);
    ``NonNodule``; ``CHARACTERISTIC_NAMES``.
Rasterising (:mod:`napari_lungkd.lidc_raster`)
    ``grid_for_ct(ct)`` / ``xml_grid(read)`` -> :class:`SliceGrid`;
    ``rasterise_annotation(mark, grid, reader, include_edges=False)`` -> :class:`AnnotationMask`
    (``box``, ``offset_zyx``, ``voxels``, ``voxels_per_z()``, ``to_volume()``);
    ``rasterise_read(read, grid, include_edges=False)``; ``reader_label_volumes(...)``.
Nodules (:mod:`napari_lungkd.lidc_nodules`)
    ``cluster_annotations(masks, tol_mm=3.0)`` -> lists of annotation indices (one per reader);
    ``consensus(masks, level=0.5)`` -> :class:`ConsensusMask`; ``build_nodules(masks, level)``
    -> list of :class:`Nodule` (readers, diameter_mm, volume_mm3, centroid, characteristics,
    consensus_voxels); ``consensus_labels(nodules, grid, rule="pylidc"|"luna16")``;
    ``passes_luna16(nodule)``.
Files (:mod:`napari_lungkd.lidc_files`)
    ``find_lidc_xml(folder, series_uid=None)``; ``pick_corrected_xml(paths)``;
    ``is_correction_name(path)``.
All in one call (this module)
    ``annotate(xml_or_read, ct=None, level=0.5, include_edges=False, tol_mm=3.0)`` ->
    :class:`LidcMasks` with ``reader_volumes()``, ``consensus_labels(rule)``,
    ``consensus_mask(rule)`` and ``to_dict()`` (the JSON that ``lungkd lidc`` writes).

In napari, ``napari_lungkd._napari.lidc_reader.lidc_layers_for_ct(ct, xml_path, level=0.5)`` turns
this into layer data tuples (one Labels layer per reader + the consensus) aligned with the CT.

Where this differs from pylidc (and why) is written in each module's docstring: one annotation
per reader per nodule when clustering (pylidc issue #18); every pixel on a drawn outline, also
between two edge points more than a pixel apart, counts as outline (pylidc's matplotlib test keeps
some of them); ``include_edges=True`` adds the whole outline back; files are read directly, so a
user's own or corrected XML works (pylidc issue #59).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_lungkd.errors import LidcXmlError
from napari_lungkd.lidc_files import find_lidc_xml, is_correction_name, pick_corrected_xml
from napari_lungkd.lidc_nodules import (
    ConsensusMask,
    Nodule,
    build_nodules,
    cluster_annotations,
    consensus,
    consensus_labels,
    passes_luna16,
)
from napari_lungkd.lidc_raster import (
    AnnotationMask,
    SliceGrid,
    grid_for_ct,
    rasterise_annotation,
    rasterise_read,
    reader_label_volumes,
    xml_grid,
)
from napari_lungkd.lidc_xml import (
    CHARACTERISTIC_NAMES,
    LidcRead,
    NoduleMark,
    NonNodule,
    ReadingSession,
    Roi,
    lidc_text,
    parse_lidc_xml,
    read_lidc_xml,
)

__all__ = [
    "CHARACTERISTIC_NAMES",
    "AnnotationMask",
    "ConsensusMask",
    "LidcMasks",
    "LidcRead",
    "NoduleMark",
    "Nodule",
    "NonNodule",
    "ReadingSession",
    "Roi",
    "SliceGrid",
    "annotate",
    "build_nodules",
    "cluster_annotations",
    "consensus",
    "consensus_labels",
    "find_lidc_xml",
    "grid_for_ct",
    "is_correction_name",
    "lidc_text",
    "parse_lidc_xml",
    "passes_luna16",
    "pick_corrected_xml",
    "rasterise_annotation",
    "rasterise_read",
    "read_lidc_xml",
    "reader_label_volumes",
    "xml_grid",
]


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


def annotate(
    xml_or_read,
    ct=None,
    level: float = 0.5,
    include_edges: bool = False,
    tol_mm: float = 3.0,
) -> LidcMasks:
    """Read (if needed), rasterise on ``ct``'s grid (or the XML-only grid), cluster, build consensus."""
    read = xml_or_read if isinstance(xml_or_read, LidcRead) else read_lidc_xml(xml_or_read)
    if not 0.0 < level <= 1.0:
        raise ValueError(f"consensus level must be in (0, 1], not {level}")
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
