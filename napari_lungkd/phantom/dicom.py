"""Write a phantom as a real DICOM CT series (one file per slice, Explicit VR Little Endian).

UIDs come from :func:`pydicom.uid.generate_uid` with entropy from the seed, so a seed always gives
the same UIDs (and byte-identical files). Pixels are stored like LIDC's scanners store them:
signed 16-bit with ``RescaleIntercept -1024``, ``PixelPaddingValue`` outside the field of view,
``InstanceNumber`` counting from the top of the chest down, and file names in no z order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_lungkd.files import atomic_path
from napari_lungkd.phantom.scanner import PADDING_HU

INTERCEPT = -1024


@dataclass(frozen=True)
class CaseUids:
    study: str
    series: str
    frame_of_reference: str
    sops: tuple[str, ...]
    message: str


def case_uids(seed, n_slices: int, namespace: str = "napari-lungkd phantom") -> CaseUids:
    """The case's UIDs, from ``namespace`` and ``seed`` (the same inputs give the same UIDs)."""
    from pydicom.uid import generate_uid

    def uid(*parts) -> str:
        return generate_uid(prefix=None, entropy_srcs=[namespace, str(seed), *map(str, parts)])

    return CaseUids(
        study=uid("study"),
        series=uid("series"),
        frame_of_reference=uid("frame"),
        sops=tuple(uid("sop", k) for k in range(n_slices)),
        message=uid("lidc-message"),
    )


def _ds(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def write_series(phantom, series_dir, uids: CaseUids, rng) -> list[Path]:
    """Write one file per slice into ``series_dir``; returns the paths in slice (z) order."""
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian

    series_dir = Path(series_dir)
    series_dir.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = phantom.shape
    sz, sy, sx = phantom.spacing_mm
    ox, oy, oz = phantom.origin_mm
    scan = phantom.scanner
    names = rng.permutation(nz) + 1
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20000101"
    ds.StudyTime = ds.SeriesTime = "120000"
    ds.Modality = "CT"
    ds.Manufacturer = "napari-lungkd synthetic phantom"
    ds.ManufacturerModelName = "make_phantom"
    ds.PatientName = phantom.patient_id
    ds.PatientID = phantom.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.BodyPartExamined = "CHEST"
    ds.ContrastBolusAgent = "IV" if phantom.anatomy.contrast else ""
    ds.SliceThickness = _ds(sz)
    ds.KVP = "120"
    ds.ReconstructionDiameter = _ds(scan.fov_mm)
    ds.ConvolutionKernel = scan.kernel
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID = uids.study
    ds.SeriesInstanceUID = uids.series
    ds.StudyID = "1"
    ds.SeriesNumber = 3000
    ds.FrameOfReferenceUID = uids.frame_of_reference
    ds.PositionReferenceIndicator = "SN"
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ny, nx
    ds.PixelSpacing = [_ds(sy), _ds(sx)]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.PixelPaddingValue = PADDING_HU - INTERCEPT
    ds.WindowCenter, ds.WindowWidth = "-600", "1500"
    ds.RescaleIntercept = str(INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    paths = []
    for k in range(nz):
        z = oz + k * sz
        ds.SOPInstanceUID = uids.sops[k]
        meta.MediaStorageSOPInstanceUID = uids.sops[k]
        ds.InstanceNumber = nz - k
        ds.ImagePositionPatient = [_ds(ox), _ds(oy), _ds(z)]
        ds.SliceLocation = _ds(z)
        raw = phantom.hu[k].astype(np.int16) - np.int16(INTERCEPT)
        ds.PixelData = raw.astype("<i2").tobytes()
        path = series_dir / f"{int(names[k]):06d}.dcm"
        with atomic_path(path) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        paths.append(path)
    return paths
