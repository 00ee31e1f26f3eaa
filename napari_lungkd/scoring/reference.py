"""What a detector on one LIDC-IDRI CT is scored against: LUNA16's references and irrelevant findings.

From an :class:`~napari_lungkd.lidc.LidcMasks` (``napari_lungkd.lidc.annotate(xml, ct=ct)``):

* **references**: the nodules passing :func:`~napari_lungkd.lidc.passes_luna16` (outlined as
  >= 3 mm by at least 3 readers, mean reader diameter >= 3 mm), each with its consensus mask,
  the consensus centre and the mean of the readers' diameters (LUNA16's ``diameter_mm``);
* **irrelevant findings** (LUNA16's ``annotations_excluded.csv``: a candidate on them is neither a
  hit nor a false positive):

  - ``below_consensus``: the other outlined nodules (1-2 readers, or under 3 mm); region: the union
    of their readers' outlines; radius: half their mean diameter;
  - ``reference_outline``: each reference's readers' outlines beyond its consensus (a candidate
    on a reader's outline but off the consensus is not punished); radius: as the reference;
  - ``small_nodule``: a reader's < 3 mm nodule mark (one point, no outline);
  - ``non_nodule``: a reader's non-nodule mark (one point).

  The points get a radius of ``point_radius_mm`` = 5 mm: LUNA16's evaluation script gives every
  finding of unknown size a diameter of 10 mm (``if diameter < 0.0: diameter = 10.0``).

Marks on a z with no slice of the CT are skipped and named in ``warnings``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_lungkd.errors import LidcXmlError
from napari_lungkd.lidc.masks import LidcMasks
from napari_lungkd.lidc.nodules import passes_luna16
from napari_lungkd.lidc.raster import SliceGrid
from napari_lungkd.scoring.hits import IrrelevantFinding, Reference, ScanCase

POINT_RADIUS_MM = 5.0
"""Radius of a point mark (small nodule, non-nodule): LUNA16's 10 mm for findings of unknown size."""


@dataclass(frozen=True, eq=False)
class LidcTruth:
    """References and irrelevant findings of one CT, with their label volumes on its grid."""

    references: tuple[Reference, ...]
    irrelevant: tuple[IrrelevantFinding, ...]
    reference_labels: np.ndarray
    """uint16: a reference's ``label`` marks its consensus voxels."""
    irrelevant_labels: np.ndarray
    """uint16: an irrelevant region's ``label`` marks its voxels (where regions overlap, one wins:
    a candidate on any of them is ignored all the same)."""
    spacing_mm: tuple[float, float, float]
    source: str
    warnings: tuple[str, ...] = ()

    def case(self, candidates, candidate_labels=None, name: str | None = None) -> ScanCase:
        """This CT as a :class:`ScanCase` with the given candidates (and their label volume)."""
        return ScanCase(
            spacing_mm=self.spacing_mm,
            candidates=tuple(candidates),
            references=self.references,
            irrelevant=self.irrelevant,
            candidate_labels=candidate_labels,
            reference_labels=self.reference_labels,
            irrelevant_labels=self.irrelevant_labels,
            name=self.source if name is None else name,
        )

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "references": [
                {"name": r.name, "centre_zyx": list(r.centre_zyx), "diameter_mm": r.diameter_mm}
                for r in self.references
            ],
            "irrelevant": [
                {"kind": f.kind, "centre_zyx": list(f.centre_zyx), "radius_mm": f.radius_mm}
                for f in self.irrelevant
            ],
            "point_radius_mm": POINT_RADIUS_MM,
            "warnings": list(self.warnings),
        }


def _point_zyx(grid: SliceGrid, z_mm: float, sop_uid, x: float, y: float):
    k, _how = grid.slice_of(z_mm, sop_uid)
    return None if k is None else (float(k), float(y), float(x))


def _paint(labels: np.ndarray, label: int, masks) -> bool:
    """Paint the union of annotation masks with ``label``; whether any voxel was painted."""
    painted = False
    for m in masks:
        if m.box.size and m.box.any():
            labels[m.slices][m.box] = label
            painted = True
    return painted


def lidc_truth(lidc: LidcMasks, point_radius_mm: float = POINT_RADIUS_MM) -> LidcTruth:
    """Build one CT's references and irrelevant findings (module doc) from its LIDC annotations.

    ``lidc`` must be annotated on the CT (``annotate(xml, ct=ct)``): the XML-only grid has no
    voxel size to measure distances with.
    """
    grid = lidc.grid
    if grid.spacing_mm is None:
        raise LidcXmlError(
            f"{lidc.read.source}: annotated without its CT, so the voxel size is unknown; "
            "annotate the XML on its CT to score detections against it."
        )
    if not point_radius_mm > 0:
        raise ValueError(f"point_radius_mm must be positive, not {point_radius_mm}")
    warnings: list[str] = []
    ref_labels = lidc.consensus_labels("luna16")
    irr_labels = np.zeros(grid.shape, dtype=np.uint16)
    references: list[Reference] = []
    irrelevant: list[IrrelevantFinding] = []

    def add_region(kind: str, centre, radius: float, masks) -> None:
        label = len(irrelevant) + 1
        painted = _paint(irr_labels, label, masks)
        irrelevant.append(IrrelevantFinding(centre, radius, label if painted else None, kind))

    for nod in lidc.nodules:
        if nod.centroid_zyx is None:
            warnings.append(f"nodule {nod.index + 1} has no voxel on this CT; left out")
            continue
        masks = [lidc.annotations[i] for i in nod.annotations]
        diameter = nod.diameter_mm if nod.diameter_mm else 2 * point_radius_mm
        if passes_luna16(nod):
            label = nod.index + 1 if nod.consensus_voxels else None
            name = f"nodule {nod.index + 1} ({nod.n_readers} readers)"
            references.append(Reference(nod.centroid_zyx, float(diameter), label, name))
            add_region("reference_outline", nod.centroid_zyx, diameter / 2, masks)
        else:
            add_region("below_consensus", nod.centroid_zyx, diameter / 2, masks)

    for s in lidc.read.sessions:
        for mark in s.small_nodules:
            if not mark.rois or mark.point_xyz is None:
                continue
            roi = mark.rois[0]
            x, y, _z = mark.point_xyz
            zyx = _point_zyx(grid, roi.z_mm, roi.sop_uid, x, y)
            if zyx is None:
                warnings.append(
                    f"reader {s.index + 1}, small nodule {mark.nodule_id!r}: z {roi.z_mm} mm "
                    "is on no slice of the CT; left out"
                )
                continue
            irrelevant.append(IrrelevantFinding(zyx, float(point_radius_mm), None, "small_nodule"))
        for nn in s.non_nodules:
            zyx = _point_zyx(grid, nn.z_mm, nn.sop_uid, nn.x, nn.y)
            if zyx is None:
                warnings.append(
                    f"reader {s.index + 1}, non-nodule {nn.non_nodule_id!r}: z {nn.z_mm} mm "
                    "is on no slice of the CT; left out"
                )
                continue
            irrelevant.append(IrrelevantFinding(zyx, float(point_radius_mm), None, "non_nodule"))

    return LidcTruth(
        references=tuple(references),
        irrelevant=tuple(irrelevant),
        reference_labels=ref_labels,
        irrelevant_labels=irr_labels,
        spacing_mm=tuple(float(v) for v in grid.spacing_mm),
        source=lidc.read.source,
        warnings=tuple(warnings),
    )
