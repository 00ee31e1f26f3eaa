"""DICOM-SEG and NIfTI masks overlay their CT exactly: same voxels at the same LPS positions.

The check is independent of our readers: positions are recomputed from the raw DICOM headers
(ImagePositionPatient / ImageOrientationPatient / PixelSpacing) and from SimpleITK's geometry.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from napari_lungkd.errors import ExportError
from napari_lungkd.io.dicom.seg import read_dicom_seg, source_datasets, write_dicom_seg


def _pixel_lps(ipp, iop, spacing, rows, cols):
    """LPS (x, y, z) of every pixel of a DICOM image, shape (rows, cols, 3) — PS3.3 C.7.6.2.1.1."""
    ipp = np.asarray([float(v) for v in ipp])
    iop = np.asarray([float(v) for v in iop])
    dr, dc = (float(v) for v in spacing)
    r = np.arange(rows)[:, None, None]
    c = np.arange(cols)[None, :, None]
    return ipp + c * dc * iop[:3] + r * dr * iop[3:]


def _lps_set(points) -> set:
    return {tuple(np.round(p, 2)) for p in np.asarray(points).reshape(-1, 3)}


def write_series(
    folder, n=6, rows=24, cols=20, iop=(1, 0, 0, 0, 1, 0), marker_lps=(20.0, 0.0, 10.0)
):
    """A tiny CT series in the given orientation, files named against z order, with a bright
    marker (1000 HU) within 4 mm of ``marker_lps``; returns the marker's LPS voxel centres."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    spacing = (0.8, 0.7)
    iop = np.asarray(iop, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    # put the volume's centre near LPS (0, 0, 0): first pixel is offset back along rows/cols
    start = -(cols / 2) * spacing[1] * iop[:3] - (rows / 2) * spacing[0] * iop[3:]
    marker = []
    for k in range(n):
        ipp = start + normal * (k * 2.5 - n * 1.25)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{n - k:03d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = (
            "Test^Orient",
            "ORIENT1",
            "",
            "O",
        )
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyID, ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "1", "20260101", "120000", ""
        ds.ReferringPhysicianName, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = (
            "",
            "CT",
            1,
            n - k,
        )
        ds.Manufacturer = "synthetic"
        ds.ImageOrientationPatient = [f"{v:g}" for v in iop]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in ipp]
        ds.PixelSpacing, ds.SliceThickness = [f"{v:g}" for v in spacing], "2.5"
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = (
            rows,
            cols,
            1,
            "MONOCHROME2",
        )
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
        lps = _pixel_lps(ds.ImagePositionPatient, iop, spacing, rows, cols)
        near = np.linalg.norm(lps - np.asarray(marker_lps), axis=-1) < 4.0
        px = np.full((rows, cols), -800, dtype=np.int16)
        px[near] = 1000
        marker.extend(lps[near])
        ds.PixelData = px.tobytes()
        ds.save_as(folder / f"{n - k:03d}.dcm", enforce_file_format=True)
    return _lps_set(marker)


def _seg_frames_lps(seg_path) -> set:
    """LPS of every nonzero SEG pixel, from the SEG's own per-frame positions (plain pydicom)."""
    seg = pydicom.dcmread(seg_path)
    px = seg.pixel_array.reshape(-1, int(seg.Rows), int(seg.Columns))
    shared = seg.SharedFunctionalGroupsSequence[0]
    iop = shared.PlaneOrientationSequence[0].ImageOrientationPatient
    spacing = shared.PixelMeasuresSequence[0].PixelSpacing
    out = []
    for i, fr in enumerate(seg.PerFrameFunctionalGroupsSequence):
        lps = _pixel_lps(
            fr.PlanePositionSequence[0].ImagePositionPatient, iop, spacing, px.shape[1], px.shape[2]
        )
        out.extend(lps[px[i] > 0])
    return _lps_set(out)


def _nifti_lps(path) -> set:
    import SimpleITK as sitk

    img = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(img)
    return _lps_set(
        [
            img.TransformIndexToPhysicalPoint([int(i) for i in zyx[::-1]])
            for zyx in np.argwhere(arr > 0)
        ]
    )


def _check_overlay(ct, mask, tmp_path):
    from napari_lungkd.io.masks import write_mask

    expected = _lps_set(ct.index_to_lps(np.argwhere(mask > 0)))
    seg_path = write_dicom_seg(tmp_path / "mask.dcm", mask, ct)
    nii_path = write_mask(tmp_path / "mask.nii.gz", mask, ct)
    assert _seg_frames_lps(seg_path) == expected
    assert _nifti_lps(nii_path) == expected
    back = read_dicom_seg(seg_path, ct)
    assert back.shape == ct.shape and np.array_equal(back, (mask > 0).astype(np.uint8))
    # every SEG frame references the source slice that sits at the same position
    seg = pydicom.dcmread(seg_path)
    by_uid = {ds.SOPInstanceUID: ds for ds in source_datasets(ct)}
    for fr in seg.PerFrameFunctionalGroupsSequence:
        ref = fr.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        src_pos = np.asarray(by_uid[ref].ImagePositionPatient, dtype=float)
        assert np.allclose(
            np.asarray(fr.PlanePositionSequence[0].ImagePositionPatient, dtype=float),
            src_pos,
            atol=1e-3,
        )
    return expected


@pytest.mark.parametrize(
    "iop",
    [(1, 0, 0, 0, 1, 0), (-1, 0, 0, 0, -1, 0), (1, 0, 0, 0, -1, 0)],
    ids=["standard", "rotated180", "rows-flipped"],
)
def test_synthetic_series_seg_and_nifti_overlay_the_marker(tmp_path, iop):
    from napari_lungkd.io import load_ct

    marker = write_series(tmp_path / "series", iop=iop, marker_lps=(4.0, -2.0, 2.0))
    ct = load_ct(tmp_path / "series")
    mask = (ct.hu > 500).astype(np.uint8)
    assert mask.sum() == len(marker) > 0
    # the mask drawn on what napari shows lands on the bright marker, in every file format
    assert _check_overlay(ct, mask, tmp_path) == marker


def test_refuses_existing_file_and_non_dicom_ct(tmp_path):
    from napari_lungkd.ct import CtVolume
    from napari_lungkd.io import load_ct

    write_series(tmp_path / "series")
    ct = load_ct(tmp_path / "series")
    mask = np.zeros(ct.shape, np.uint8)
    path = write_dicom_seg(tmp_path / "m.dcm", mask, ct)
    with pytest.raises(ExportError, match="already exists"):
        write_dicom_seg(path, mask, ct)
    write_dicom_seg(path, mask, ct, overwrite=True)
    nifti_ct = CtVolume(
        hu=np.zeros((2, 3, 3), np.int16), spacing_mm=(1.0, 1.0, 1.0), source="x.nii.gz"
    )
    with pytest.raises(ExportError, match="did not come from DICOM"):
        write_dicom_seg(tmp_path / "n.dcm", np.zeros((2, 3, 3), np.uint8), nifti_ct)
    with pytest.raises(ExportError, match="not a readable DICOM-SEG"):
        read_dicom_seg(tmp_path / "series" / "001.dcm", ct)


@pytest.mark.realdata
@pytest.mark.slow
def test_lidc0001_seg_and_nifti_overlay_left_upper_blob(lidc0001, tmp_path):
    from napari_lungkd.io import load_ct

    ct = load_ct(lidc0001)
    # a blob in the patient's LEFT (+x in LPS), upper (superior, +z) lung, on the top 4 slices
    centre = ct.lps_to_index(np.array([90.0, -20.0, float(np.max(ct.z_positions_mm)) - 5.0]))
    zz, yy, xx = np.ogrid[: ct.shape[0], : ct.shape[1], : ct.shape[2]]
    cz, cy, cx = np.round(centre).astype(int)
    mask = (((yy - cy) ** 2 + (xx - cx) ** 2 < 15**2) & (np.abs(zz - cz) <= 2)).astype(np.uint8)
    assert mask.sum() > 0
    lps = np.array(sorted(_check_overlay(ct, mask, tmp_path)))
    assert (lps[:, 0] > 60).all()  # patient's left
    assert (lps[:, 2] > np.median(ct.z_positions_mm)).all()  # superior half


def test_labelled_mask_gives_one_segment_per_nodule_and_reads_back_labelled(tmp_path):
    from napari_lungkd.io import load_ct
    from napari_lungkd.io.dicom import seg as seg_module
    from napari_lungkd.io.masks import save_mask

    write_series(tmp_path / "series", iop=(1, 0, 0, 0, 1, 0))
    ct = load_ct(tmp_path / "series")
    labels = np.zeros(ct.shape, np.uint16)
    labels[1:3, 2:5, 2:5], labels[3, 10:12, 10:12], labels[5, 20, 15] = 1, 2, 3
    files = save_mask(tmp_path / "m.nii.gz", labels, ct, dicom_seg=True, labels=True)
    seg = pydicom.dcmread(files["dicom_seg"])
    assert [s.SegmentLabel for s in seg.SegmentSequence] == [f"lung nodule {i}" for i in (1, 2, 3)]
    np.testing.assert_array_equal(read_dicom_seg(files["dicom_seg"], ct), labels)
    np.testing.assert_array_equal(read_dicom_seg(files["dicom_seg"], ct, 2), labels == 2)
    import json

    note = json.loads(files["sidecar"].read_text())["labels"]
    assert "label i is nodule i" in note and "one segment per nodule (" in note
    # binary masks, and more labels than segments allowed, keep one segment (and say so)
    assert seg_module.segment_plan(labels, labels=False)[0] == 1
    n, why = seg_module.segment_plan(np.full(3, seg_module.MAX_SEGMENTS + 1), labels=True)
    assert n == 1 and "one segment holding all" in why
