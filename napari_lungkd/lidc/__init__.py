"""LIDC-IDRI reader annotations: parse the XML, rasterise the outlines, cluster, build consensus.

The work is split by noun; this package gathers the public names:

Parsing (:mod:`napari_lungkd.lidc.parse`)
    ``read_lidc_xml(path)`` -> :class:`LidcRead` (path, ``bytes`` or a binary file object);
    ``parse_lidc_xml(source, name=None)`` the same with a label for error messages;
    dataclasses ``LidcRead`` -> ``ReadingSession`` (``nodules``, ``large_nodules``,
    ``small_nodules``, ``non_nodules``) -> ``NoduleMark`` (``characteristics``, ``rois``,
    ``is_large``, ``point_xyz``) -> ``Roi`` (``z_mm``, ``sop_uid``, ``inclusion``, ``points_xy``);
    ``NonNodule``; ``CHARACTERISTIC_NAMES``.
Rasterising (:mod:`napari_lungkd.lidc.raster`)
    ``grid_for_ct(ct)`` / ``xml_grid(read)`` -> :class:`SliceGrid`;
    ``rasterise_annotation(mark, grid, reader, include_edges=False)`` -> :class:`AnnotationMask`
    (``box``, ``offset_zyx``, ``voxels``, ``voxels_per_z()``, ``to_volume()``);
    ``rasterise_read(read, grid, include_edges=False)``; ``reader_label_volumes(...)``.
Nodules (:mod:`napari_lungkd.lidc.nodules`)
    ``cluster_annotations(masks, tol_mm=3.0)`` -> lists of annotation indices (one per reader);
    ``consensus(masks, level=0.5)`` -> :class:`ConsensusMask`; ``build_nodules(masks, level)``
    -> list of :class:`Nodule` (readers, diameter_mm, volume_mm3, centroid, characteristics,
    consensus_voxels); ``consensus_labels(nodules, grid, rule="pylidc"|"luna16")``;
    ``passes_luna16(nodule)``.
Files (:mod:`napari_lungkd.lidc.files`)
    ``find_lidc_xml(folder, series_uid=None)``; ``pick_corrected_xml(paths)``;
    ``is_correction_name(path)``.
All in one call (:mod:`napari_lungkd.lidc.masks`)
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

from napari_lungkd.lidc.files import (
    find_lidc_xml,
    is_correction_name,
    pick_corrected_xml,
)
from napari_lungkd.lidc.masks import (
    LidcMasks,
    annotate,
)
from napari_lungkd.lidc.nodules import (
    ConsensusMask,
    Nodule,
    build_nodules,
    cluster_annotations,
    consensus,
    consensus_labels,
    passes_luna16,
)
from napari_lungkd.lidc.parse import (
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
from napari_lungkd.lidc.raster import (
    AnnotationMask,
    SliceGrid,
    grid_for_ct,
    rasterise_annotation,
    rasterise_read,
    reader_label_volumes,
    xml_grid,
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
