"""Every file in ../shared/realdata/dicom_edge_cases either loads correctly or is refused by name.

"Correctly" is checked against an independent oracle: pydicom's own pixel_array, rescaled, with
padding as air, placed voxel by voxel through each frame's ImagePositionPatient /
ImageOrientationPatient / PixelSpacing and looked up in the loaded CtVolume through its geometry
(so reorientation and sorting are checked too).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from napari_lungkd.errors import CtLoadError
from napari_lungkd.io import load_ct

REPO = Path(__file__).resolve().parents[3]
EDGE = (
    Path(os.environ.get("LUNGKD_REALDATA", REPO.parent / "shared" / "realdata"))
    / "dicom_edge_cases"
)
FILES = sorted(p for p in EDGE.rglob("*") if p.is_file()) if EDGE.is_dir() else []

# the files that are CT images with pixels; every other file must be refused
LOADS = {
    "pydicom_data/693_UNCI.dcm",
    "pydicom_data/bad_sequence.dcm",
    "pydicom_data/eCT_Supplemental.dcm",
    "pydicom_wheel/CT_small.dcm",
    "pydicom_wheel/J2K_pixelrep_mismatch.dcm",
}
LOADS |= {
    str(p.relative_to(EDGE))
    for p in FILES
    if p.parent.name in ("CT2", "CT2N", "CT5N") and "dicomdirtests" in p.parts
}
# what the refusal must mention, by file (modality named for wrong modalities)
REASONS = {
    "JPEG-LL.dcm": "modality is NM",
    "JPGLosslessP14SV1_1s_1f_8b.dcm": "modality is US",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "modality is MR",
    "ExplVR_BigEnd.dcm": "modality is US",
    "ExplVR_BigEndNoMeta.dcm": "RTPLAN",
    "ExplVR_LitEndNoMeta.dcm": "RTPLAN",
    "JPEG-lossy.dcm": "modality is NM",
    "JPEG2000.dcm": "modality is NM",
    "JPEG2000-embedded-sequence-delimiter.dcm": "modality is NM",
    "JPGExtended.dcm": "modality is NM",
    "MR_truncated.dcm": "modality is MR",
    "badVR.dcm": "RTDOSE",
    "image_dfl.dcm": "modality is OT",
    "liver_1frame.dcm": "SEG",
    "rtstruct.dcm": "RTSTRUCT",
    "rtplan_truncated.dcm": "RTPLAN",
    "test-SR.dcm": "SR",
    "no_meta.dcm": "not one",
    "UN_sequence.dcm": "no modality",
    "empty_charset_LEI.dcm": "no modality",
    "no_meta_group_length.dcm": "no modality",
    "meta_missing_tsyntax.dcm": "no Modality",
    "zipMR.gz": "not DICOM",
}


def _reason_for(path: Path) -> str:
    if path.name in REASONS:
        return REASONS[path.name]
    if path.name.startswith("DICOMDIR"):
        return "DICOMDIR"
    if path.name.startswith("MR_small") or "98892003" in path.parts:
        return "modality is MR"
    if path.parent.name.startswith("CR"):
        return "modality is CR"
    if path.name.startswith("IM0000"):
        return "no pixel data"
    if path.name.startswith(("LICENSE", "README")):
        return "not DICOM"
    raise AssertionError(f"no expected reason written down for {path}")


def _oracle_frames(path: Path):
    """(hu 2-D, ipp, row cosine, column cosine, (row spacing, column spacing)) per frame."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.astype(np.float64)
    if pixels.ndim == 2:
        pixels = pixels[None]
        groups = [ds]
    else:
        shared = ds.SharedFunctionalGroupsSequence[0]
        groups = []
        for item in ds.PerFrameFunctionalGroupsSequence:
            g = pydicom.Dataset()
            for seq in (shared, item):
                for kw in (
                    "PlanePositionSequence",
                    "PlaneOrientationSequence",
                    "PixelMeasuresSequence",
                    "PixelValueTransformationSequence",
                ):
                    if kw in seq:
                        for elem in seq[kw][0]:
                            g.add(elem)
            groups.append(g)
    padding = None
    if "PixelPaddingValue" in ds:
        padding = int(ds.PixelPaddingValue)
        if ds.PixelRepresentation == 1 and padding >= 2 ** (ds.BitsAllocated - 1):
            padding -= 2**ds.BitsAllocated
    out = []
    for frame, g in zip(pixels, groups):
        hu = frame * float(g.get("RescaleSlope", 1)) + float(g.get("RescaleIntercept", 0))
        if padding is not None:
            hu[frame == padding] = -1024
        iop = np.asarray(g.ImageOrientationPatient, dtype=float)
        out.append(
            (
                hu,
                np.asarray(g.ImagePositionPatient, float),
                iop[:3],
                iop[3:],
                [float(v) for v in g.PixelSpacing],
            )
        )
    return out


def _check_against_oracle(ct, path: Path) -> None:
    assert np.isfinite(ct.hu).all()
    frames = _oracle_frames(path)
    slice_of = None
    if any("one slice of a series" in w for w in ct.warnings):
        # one file of a series loads the whole series (as viewers do): the file is one slice of
        # it, found by its SOPInstanceUID (z by position is off where the series has gaps)
        assert len(frames) == 1 and ct.shape[0] > 1
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        slice_of = list(ct.sop_uids).index(uid)
    else:
        assert ct.hu.size == sum(f[0].size for f in frames)
    for hu, ipp, row, col, (row_mm, col_mm) in frames:
        r, c = np.mgrid[: hu.shape[0], : hu.shape[1]]
        lps = ipp + c[..., None] * col_mm * row + r[..., None] * row_mm * col
        index = np.rint(ct.lps_to_index(lps)).astype(int)
        if slice_of is not None:
            index[..., 0] = slice_of
        assert (index >= 0).all() and (index < np.asarray(ct.shape)).all()
        np.testing.assert_array_equal(ct.hu[index[..., 0], index[..., 1], index[..., 2]], hu)


@pytest.mark.realdata
@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(EDGE)) for p in FILES])
def test_edge_case_file_loads_correctly_or_is_refused_by_name(realdata, path):
    relative = str(path.relative_to(EDGE))
    if relative in LOADS:
        ct = load_ct(path)
        _check_against_oracle(ct, path)
        return
    with pytest.raises(CtLoadError) as info:
        load_ct(path)
    message = str(info.value)
    assert str(path) in message
    assert _reason_for(path) in message
    assert "\n" not in message


@pytest.mark.realdata
def test_enhanced_ct_is_reoriented_with_frames_in_order(realdata):
    ct = load_ct(EDGE / "pydicom_data" / "eCT_Supplemental.dcm")
    assert ct.shape == (2, 512, 512)
    np.testing.assert_array_equal(ct.direction, np.eye(3))  # stored rows ran towards -x
    assert ct.spacing_mm == pytest.approx((10.0, 0.388672, 0.388672))
    np.testing.assert_allclose(ct.z_positions_mm, [-159.0, -149.0])
    assert ct.metadata["frame_numbers"] == [1, 2]


@pytest.mark.realdata
def test_folder_of_mixed_objects_loads_the_largest_ct_series(realdata):
    ct = load_ct(EDGE / "pydicom_wheel" / "dicomdirtests")
    assert ct.shape == (5, 16, 16)
    assert len(ct.metadata["other_series"]) == 2
    assert ct.metadata["ignored_files"]["modality MR"] == 17
    assert ct.metadata["ignored_files"]["CT without pixel data"] == 50  # TINY_ALPHA headers
    np.testing.assert_array_equal(np.diff(ct.z_positions_mm) > 0, True)


@pytest.mark.realdata
def test_folder_without_ct_names_what_it_found(realdata):
    with pytest.raises(CtLoadError, match=r"no CT image series.*17 file\(s\) of modality MR"):
        load_ct(EDGE / "pydicom_wheel" / "dicomdirtests" / "98892003")
