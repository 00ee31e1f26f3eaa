"""Small synthetic CT series written with pydicom, for the loader tests (helper, not a test module).

Every slice's stored values encode where it belongs: slice ``k`` (in ascending position order)
holds ``hu = 10 * k + column`` (before padding), so a test can tell at once whether the loader put
the slices in the right order and applied the rescale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid


@dataclass
class Series:
    folder: Path
    series_uid: str
    files: list[Path] = field(default_factory=list)  # in ascending position order
    sop_uids: list[str] = field(default_factory=list)
    z_mm: list[float] = field(default_factory=list)
    hu: np.ndarray | None = None  # expected HU, ascending z


def expected_hu(k: int, rows: int, cols: int) -> np.ndarray:
    hu = (10 * k + np.tile(np.arange(cols, dtype=np.int16), (rows, 1))).astype(np.int16)
    hu[0, 0] = -1000  # some air, as every CT in HU has (napari_lungkd.io.validate checks it)
    return hu


def make_slice(
    path: Path,
    *,
    hu: np.ndarray,
    ipp=(-100.0, -120.0, 0.0),
    iop=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    instance: int = 1,
    series_uid: str,
    study_uid: str,
    sop_uid: str | None = None,
    spacing=(0.7, 0.8),
    slope: float = 1.0,
    intercept: float = -1024.0,
    padding: int | None = None,
    pad_mask: np.ndarray | None = None,
    signed: bool = True,
    modality: str = "CT",
    patient_id: str = "SYN-0001",
    compress: str | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> str:
    """Write one slice whose HU are ``hu`` (stored = (hu - intercept) / slope); returns its UID."""
    sop_uid = sop_uid or generate_uid()
    stored = np.round((hu.astype(float) - intercept) / slope)
    if pad_mask is not None:
        stored[pad_mask] = padding
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesDescription = "synthetic"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [f"{v:.4f}" for v in ipp]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
    ds.PixelSpacing = [spacing[0], spacing[1]]
    ds.SliceThickness = 2.5
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16 if signed else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    if padding is not None:
        ds.PixelPaddingValue = padding if padding >= 0 or not signed else padding + 65536
        ds["PixelPaddingValue"].VR = "US"  # as GE writes it (LIDC-IDRI): -2000 stored as 63536
    order = ">" if transfer_syntax == "1.2.840.10008.1.2.2" else "<"  # the data set's byte order
    ds.PixelData = stored.astype(f"{order}{'i2' if signed else 'u2'}").tobytes()
    if compress:
        ds.compress(compress)
    ds.save_as(path, enforce_file_format=True)
    return sop_uid


def write_series(
    folder: Path,
    n: int = 6,
    *,
    rows: int = 6,
    cols: int = 7,
    z0: float = -50.0,
    dz: float = 2.5,
    skip: tuple[int, ...] = (),
    names=None,
    instance_numbers=None,
    tilt_mm_per_slice: float = 0.0,
    series_uid: str | None = None,
    study_uid: str | None = None,
    **slice_kwargs,
) -> Series:
    """Write ``n`` slices (minus ``skip``) at z = z0 + k * dz; file names/instances as given."""
    folder.mkdir(parents=True, exist_ok=True)
    series = Series(folder, series_uid or generate_uid())
    study_uid = study_uid or generate_uid()
    names = names or [f"slice_{k:03d}.dcm" for k in range(n)]
    instance_numbers = instance_numbers or list(range(1, n + 1))
    kept = []
    for k in range(n):
        if k in skip:
            continue
        hu = expected_hu(k, rows, cols)
        path = folder / names[k]
        uid = make_slice(
            path,
            hu=hu,
            ipp=(-100.0, -120.0 + k * tilt_mm_per_slice, z0 + k * dz),
            instance=instance_numbers[k],
            series_uid=series.series_uid,
            study_uid=study_uid,
            **slice_kwargs,
        )
        series.files.append(path)
        series.sop_uids.append(uid)
        series.z_mm.append(z0 + k * dz)
        kept.append(hu)
    series.hu = np.stack(kept)
    return series
