"""The real chest CTs of ``$LUNGKD_REALDATA`` and what is marked on each: nodules to find, lesions to
leave alone, and whether their licence lets them train the weights we ship.

Every real scan is one patient. What is marked on it becomes either a *reference* (a nodule a
detector should find: LIDC-IDRI consensus nodules that pass the LUNA16 rule) or an *irrelevant*
region (a lesion that is not a nodule by that rule: a GTV, a mass, a box around a tumour, a
reader's mark below the consensus), where a candidate counts neither as a hit nor as a false
positive. Everything else a model marks in the lungs is a false positive: on these scans, mostly
vessels. ``more_chests/README.md`` says what each scan is; LUNG1-001 and IBSI_ct_phantom are
CC BY-NC and only evaluate (``trainable=False``).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET  # noqa: S405  (our own shared files, VOC boxes only)
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
UNMARKED_MASS_MM = 20.0
"""On a cancer patient's scan with nothing marked (C3N-00247), a candidate wider than this may be the
unmarked tumour: it is ignored rather than called a false positive."""
LESION_MARGIN_MM = 5.0
"""Marked lesions grow by this much before they count as irrelevant (outlines are tight, boxes are
drawn on a few slices, and a candidate on a lesion's rim is about the lesion)."""


def realdata_root() -> Path:
    return Path(os.environ.get("LUNGKD_REALDATA", REPO.parent / "shared" / "realdata")).resolve()


@dataclass(frozen=True)
class RealChest:
    """One real chest CT of the shared folder."""

    name: str
    patient: str
    image: str
    """Path below the real-data root: a DICOM folder or an image file."""
    marks: str
    """How its lesions are marked: ``lidc``, ``mask:<path>``, ``voc:<folder>``, ``unmarked``,
    ``none`` (a crop of healthy lung with nothing to mark)."""
    trainable: bool

    def path(self, root: Path | None = None) -> Path:
        return (root or realdata_root()) / self.image


CHESTS = (
    RealChest("LIDC-IDRI-0001", "LIDC-IDRI-0001", "LIDC-IDRI-0001", "lidc", True),
    RealChest(
        "LUNG1-001",
        "LUNG1-001",
        "more_chests/LUNG1-001/image",
        "mask:more_chests/LUNG1-001/mask_GTV-1.nrrd",
        False,
    ),
    RealChest("C3N-00247", "C3N-00247", "more_chests/C3N-00247", "unmarked", True),
    RealChest(
        "pyradiomics_lung2",
        "pyradiomics_lung2",
        "more_chests/pyradiomics_lung2/lung2_image.nrrd",
        "mask:more_chests/pyradiomics_lung2/lung2_label.nrrd",
        True,
    ),
    RealChest(
        "Lung_Dx-A0001",
        "Lung_Dx-A0001",
        "more_chests/Lung_Dx-A0001/series_5mm",
        "voc:more_chests/Lung_Dx-A0001/boxes_voc_xml",
        True,
    ),
    RealChest(
        "IBSI_ct_phantom",
        "IBSI_ct_phantom",
        "more_chests/IBSI_ct_phantom/nifti/image/phantom.nii.gz",
        "mask:more_chests/IBSI_ct_phantom/nifti/mask/mask.nii.gz",
        False,
    ),
    RealChest(
        "elastix_baseline",
        "elastix",
        "more_chests/elastix_lung_crops/3DCT_lung_baseline.mha",
        "none",
        True,
    ),
    RealChest(
        "elastix_followup",
        "elastix",
        "more_chests/elastix_lung_crops/3DCT_lung_followup.mha",
        "none",
        True,
    ),
)


def check_trainable(chest: RealChest) -> None:
    """Refuse (TrainingError) a chest whose licence does not let it train the weights we ship."""
    if not chest.trainable:
        from napari_lungkd.errors import TrainingError

        raise TrainingError(
            f"{chest.name} may not train the weights we ship (its licence is CC BY-NC); "
            "it only evaluates."
        )


def available(root: Path | None = None) -> list[RealChest]:
    """The chests whose files are present."""
    return [c for c in CHESTS if c.path(root).exists()]


def _dilate(mask: np.ndarray, spacing, margin_mm: float) -> np.ndarray:
    from scipy import ndimage

    if not mask.any():
        return mask
    return ndimage.distance_transform_edt(~mask, sampling=spacing) <= margin_mm


def _voc_boxes(ct, folder: Path) -> np.ndarray:
    """Pascal VOC boxes named by SOPInstanceUID, painted on their slices of ``ct``."""
    mask = np.zeros(ct.hu.shape, dtype=bool)
    index = {uid: k for k, uid in enumerate(ct.sop_uids or ())}
    for f in sorted(folder.glob("*.xml")):
        k = index.get(f.stem)
        if k is None:  # a box of the other reconstruction, not in this series
            continue
        for box in ET.parse(f).getroot().iter("bndbox"):
            x0, y0, x1, y1 = (int(float(box.findtext(t))) for t in ("xmin", "ymin", "xmax", "ymax"))
            mask[k, y0 : y1 + 1, x0 : x1 + 1] = True
    return mask


def truth_case(chest: RealChest, ct, candidates, candidate_labels, root: Path | None = None):
    """The scoring case (:class:`~napari_lungkd.scoring.hits.ScanCase`) of ``chest`` for these
    candidates: its references and its irrelevant regions on the CT's grid."""
    from napari_lungkd.io.masks import read_mask
    from napari_lungkd.lidc import annotate, find_lidc_xml
    from napari_lungkd.scoring.hits import IrrelevantFinding, ScanCase
    from napari_lungkd.scoring.reference import lidc_truth

    root = root or realdata_root()
    spacing = tuple(float(s) for s in ct.spacing_mm)
    if chest.marks == "lidc":
        xml = find_lidc_xml(
            Path(ct.source) if Path(ct.source).is_dir() else chest.path(root), ct.series_uid
        )
        if xml is None:
            hits = sorted(chest.path(root).rglob("*.xml"))
            xml = hits[0]
        return lidc_truth(annotate(xml, ct)).case(candidates, candidate_labels, name=chest.name)
    lesion = np.zeros(ct.hu.shape, dtype=bool)
    if chest.marks.startswith("mask:"):
        lesion = read_mask(root / chest.marks[5:], ct) > 0
    elif chest.marks.startswith("voc:"):
        lesion = _voc_boxes(ct, root / chest.marks[4:])
    irrelevant, labels = (), None
    if lesion.any():
        grown = _dilate(lesion, spacing, LESION_MARGIN_MM)
        zyx = np.argwhere(lesion).mean(axis=0)
        radius = (3.0 * lesion.sum() * np.prod(spacing) / (4.0 * np.pi)) ** (1.0 / 3.0)
        irrelevant = (
            IrrelevantFinding(
                tuple(float(v) for v in zyx),
                float(radius) + LESION_MARGIN_MM,
                label=1,
                kind="marked lesion",
            ),
        )
        labels = grown.astype(np.uint8)
    return ScanCase(
        spacing,
        candidates=tuple(candidates),
        irrelevant=irrelevant,
        candidate_labels=candidate_labels,
        irrelevant_labels=labels,
        name=chest.name,
    )


def lesion_mask(chest: RealChest, ct, root: Path | None = None) -> np.ndarray:
    """bool ``(z, y, x)``: everything marked on ``chest`` (LIDC: every reader's outline; GTVs,
    label masks, boxes) — where synthetic nodules must not go and no candidate is background."""
    from napari_lungkd.io.masks import read_mask
    from napari_lungkd.lidc import annotate, find_lidc_xml

    root = root or realdata_root()
    if chest.marks == "lidc":
        xml = (
            find_lidc_xml(chest.path(root), ct.series_uid)
            or sorted(chest.path(root).rglob("*.xml"))[0]
        )
        masks = annotate(xml, ct)
        out = np.zeros(ct.hu.shape, dtype=bool)
        for vol in masks.reader_volumes():
            out |= np.asarray(vol) > 0
        return out
    if chest.marks.startswith("mask:"):
        return read_mask(root / chest.marks[5:], ct) > 0
    if chest.marks.startswith("voc:"):
        return _voc_boxes(ct, root / chest.marks[4:])
    return np.zeros(ct.hu.shape, dtype=bool)
