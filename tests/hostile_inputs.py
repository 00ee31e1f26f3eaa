"""Generators of small hostile CT inputs (DICOM series, NIfTI, MetaImage, NRRD) for tests/fuzz/.

Each :class:`Case` writes its input into a folder and says what napari-lungkd must do with it:

* ``"refuse"``: ``load_ct`` raises one :class:`~napari_lungkd.errors.LungKDError` sentence that names
  the file and contains ``says``;
* ``"repair"``: it loads, finite, with a warning containing ``says``;
* ``"not_hu"``: it loads with a warning and ``metadata["not_hu"]``, and segmenting it is refused.

Add a case here for every new finding; tests/fuzz/ runs them all. The values are small (32 x 32
pixels, 4 slices) so the whole set builds and loads in seconds.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from dicom_factory import make_slice
from pydicom.uid import generate_uid


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], Path]
    expect: str  # "refuse" | "repair" | "not_hu"
    says: str

    def __str__(self) -> str:  # the pytest id
        return self.name


def chest(nz: int = 4, n: int = 32) -> np.ndarray:
    """A tiny chest in HU: air, a body of soft tissue, two lungs."""
    yy, xx = np.mgrid[:n, :n]
    hu = np.full((nz, n, n), -1000, np.int16)
    hu[:, ((yy - n / 2) / (0.42 * n)) ** 2 + ((xx - n / 2) / (0.46 * n)) ** 2 < 1] = 40
    for cx in (0.32 * n, 0.68 * n):
        hu[:, ((yy - n / 2) / (0.26 * n)) ** 2 + ((xx - cx) / (0.12 * n)) ** 2 < 1] = -850
    return hu


# ---- DICOM -----------------------------------------------------------------------------------


def write_dicom(folder: Path, hu=None, *, per_slice=None, **kwargs) -> Path:
    """A series of ``hu``'s slices (default :func:`chest`); ``per_slice(k) -> dict`` overrides
    make_slice's arguments for slice ``k``; returns the folder."""
    hu = chest() if hu is None else hu
    folder.mkdir(parents=True, exist_ok=True)
    series, study = generate_uid(), generate_uid()
    for k in range(hu.shape[0]):
        args = {
            "ipp": (-100.0, -120.0, -50.0 + 2.5 * k),
            **kwargs,
            **(per_slice(k) if per_slice else {}),
        }
        make_slice(
            folder / f"IM{k:03d}.dcm",
            hu=hu[k],
            instance=k + 1,
            series_uid=series,
            study_uid=study,
            **args,
        )
    return folder


def set_tags(path: Path, **values) -> None:
    """Write header values as given (text such as ``"NaN"`` included), bypassing validation."""
    from pydicom import config

    ds = pydicom.dcmread(path)
    old = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        for keyword, value in values.items():
            ds[keyword].value = value
        ds.save_as(path)
    finally:
        config.settings.writing_validation_mode = old


def _dicom_patched(slices, **values) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        folder = write_dicom(tmp / "series")
        for k in slices:
            set_tags(folder / f"IM{k:03d}.dcm", **values)
        return folder

    return build


def _dicom(**kwargs) -> Callable[[Path], Path]:
    return lambda tmp: write_dicom(tmp / "series", **kwargs)


def _flipped_pixel_representation(tmp: Path) -> Path:
    folder = write_dicom(tmp / "series", intercept=0.0)  # stored = HU, negative air
    for p in folder.iterdir():
        set_tags(p, PixelRepresentation=0)
    return folder


def _huge_rows(tmp: Path) -> Path:
    folder = write_dicom(tmp / "series", hu=chest(16, 8))
    for p in folder.iterdir():
        set_tags(p, Rows=65535, Columns=65535)
    return folder


def _one_pixel(tmp: Path) -> Path:
    return write_dicom(tmp / "series", hu=np.full((1, 1, 1), -1000, np.int16))


def _mr_like(tmp: Path) -> Path:
    hu = (chest().astype(np.int32) + 1000) // 2  # 0..520, as an MR's intensities
    return write_dicom(tmp / "series", hu=hu.astype(np.int16), intercept=0.0)


def _uint16_noise(tmp: Path) -> Path:
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 65535, (4, 32, 32)).astype(np.int64)
    return write_dicom(tmp / "series", hu=stored, intercept=0.0, signed=False)


DICOM_CASES = [
    Case("dicom-slope-nan-one-slice", _dicom_patched([1], RescaleSlope="NaN"), "repair", "RescaleSlope"),
    Case("dicom-slope-zero-one-slice", _dicom_patched([2], RescaleSlope="0"), "repair", "RescaleSlope"),
    Case("dicom-slope-negative-one-slice", _dicom_patched([0], RescaleSlope="-1"), "repair", "RescaleSlope"),
    Case("dicom-slope-inf-one-slice", _dicom_patched([3], RescaleSlope="inf"), "repair", "RescaleSlope"),
    Case("dicom-intercept-nan-one-slice", _dicom_patched([1], RescaleIntercept="NaN"), "repair", "RescaleIntercept"),
    Case("dicom-slope-nan-every-slice", _dicom_patched(range(4), RescaleSlope="NaN"), "refuse", "RescaleSlope"),
    Case("dicom-spacing-zero", _dicom(spacing=(0.0, 0.0)), "refuse", "PixelSpacing"),
    Case("dicom-spacing-negative", _dicom(spacing=(-0.7, -0.7)), "refuse", "PixelSpacing"),
    Case("dicom-spacing-nan", _dicom_patched(range(4), PixelSpacing=["NaN", "NaN"]), "refuse", "PixelSpacing"),
    Case("dicom-spacing-inf", _dicom_patched(range(4), PixelSpacing=["inf", "inf"]), "refuse", "PixelSpacing"),
    Case("dicom-spacing-1e30", _dicom(spacing=(1e30, 1e30)), "refuse", "PixelSpacing"),
    Case("dicom-orientation-nan", _dicom_patched(range(4), ImageOrientationPatient=["NaN"] * 6), "refuse", "ImageOrientationPatient"),
    Case("dicom-orientation-nan-one-slice", _dicom_patched([2], ImageOrientationPatient=["NaN"] * 6), "repair", "ImageOrientationPatient"),
    Case("dicom-orientation-zero", _dicom(iop=(0.0,) * 6), "refuse", "zero-length"),
    Case("dicom-position-inf", _dicom_patched(range(4), ImagePositionPatient=["inf", "0", "0"]), "refuse", "ImagePositionPatient"),
    Case("dicom-position-inf-one-slice", _dicom_patched([1], ImagePositionPatient=["0", "0", "inf"]), "repair", "ImagePositionPatient"),
    Case("dicom-slice-spacing-1e30", _dicom(per_slice=lambda k: {"ipp": (0.0, 0.0, k * 1e30)}), "refuse", "slice spacing"),
    Case("dicom-pixel-representation-flipped", _flipped_pixel_representation, "repair", "PixelRepresentation"),
    Case("dicom-1x1x1", _one_pixel, "refuse", "too small"),
    Case("dicom-rows-columns-65535", _huge_rows, "refuse", "memory"),
    Case("dicom-mr-like-values", _mr_like, "not_hu", "Hounsfield"),
    Case("dicom-uint16-noise", _uint16_noise, "not_hu", "Hounsfield"),
]  # fmt: skip


# ---- NIfTI -----------------------------------------------------------------------------------


def write_image(path: Path, array: np.ndarray, spacing=(0.8, 0.8, 2.5)) -> Path:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def _nifti_patched(patches: dict[int, tuple[str, tuple]], array=None, gz=False):
    """A NIfTI-1 of ``array`` with header bytes overwritten: ``{offset: (struct format, values)}``."""

    def build(tmp: Path) -> Path:
        raw_path = write_image(tmp / "ct.nii", chest() if array is None else array)
        raw = bytearray(raw_path.read_bytes())
        for offset, (fmt, values) in patches.items():
            struct.pack_into("<" + fmt, raw, offset, *values)
        if gz:
            raw_path.unlink()
            out = tmp / "ct.nii.gz"
            out.write_bytes(gzip.compress(bytes(raw)))
            return out
        raw_path.write_bytes(bytes(raw))
        return raw_path

    return build


def _nifti_array(array, name="ct.nii"):
    return lambda tmp: write_image(tmp / name, array)


def _nan_voxels(fraction: float) -> np.ndarray:
    a = chest().astype(np.float32)
    flat = a.reshape(-1)
    flat[: int(fraction * flat.size)] = np.nan
    return a


def _gzip_bomb(tmp: Path) -> Path:
    """A NIfTI header declaring 1024 x 1024 x 512 int16 (1 GiB) in a few kilobytes of gzip."""
    raw = bytearray(write_image(tmp / "small.nii", chest()).read_bytes()[:352])
    struct.pack_into("<8h", raw, 40, 3, 1024, 1024, 512, 1, 1, 1, 1)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    data = (
        comp.compress(bytes(raw)) + comp.compress(b"\0" * (1 << 22)) + comp.flush(zlib.Z_SYNC_FLUSH)
    )
    (tmp / "small.nii").unlink()
    out = tmp / "bomb.nii.gz"
    out.write_bytes(data)  # truncated stream: only 4 MiB of the declared 1 GiB
    return out


def _declares_huge(tmp: Path) -> Path:
    path = write_image(tmp / "huge.nii", chest())
    raw = bytearray(path.read_bytes())
    struct.pack_into("<8h", raw, 40, 3, 32767, 32767, 32767, 1, 1, 1, 1)
    path.write_bytes(bytes(raw))
    return path


_PIXDIM = 76
NIFTI_CASES = [
    *(
        Case(f"nifti-pixdim1-{v}", _nifti_patched({_PIXDIM + 4: ("f", (v,))}), "refuse", "pixdim[1]")
        for v in (0.0, -0.8, float("nan"), float("inf"), 1e30)
    ),
    *(
        Case(f"nifti-pixdim3-{v}", _nifti_patched({_PIXDIM + 12: ("f", (v,))}), "refuse", "pixdim[3]")
        for v in (0.0, float("nan"))
    ),
    Case("nifti-gz-pixdim2-inf", _nifti_patched({_PIXDIM + 8: ("f", (float("inf"),))}, gz=True), "refuse", "pixdim[2]"),
    Case("nifti-qoffset-inf", _nifti_patched({268: ("f", (float("inf"),))}), "refuse", "qform"),
    Case("nifti-quatern-nan", _nifti_patched({256: ("f", (float("nan"),))}), "refuse", "qform"),
    Case("nifti-srow-nan", _nifti_patched({254: ("h", (1,)), 280: ("f", (float("nan"),))}), "refuse", "sform"),
    Case("nifti-scl-slope-nan", _nifti_patched({112: ("f", (float("nan"),))}), "repair", "scl_slope"),
    Case("nifti-scl-slope-negative", _nifti_patched({112: ("f", (-1.0,))}), "refuse", "scl_slope"),
    Case("nifti-nan-voxels", _nifti_array(_nan_voxels(0.01)), "repair", "NaN"),
    Case("nifti-gz-nan-voxels", _nifti_array(_nan_voxels(0.01), "ct.nii.gz"), "repair", "NaN"),
    Case("nifti-all-nan", _nifti_array(_nan_voxels(1.0)), "refuse", "NaN"),
    Case("nifti-1x1x1", _nifti_array(np.full((1, 1, 1), -1000, np.int16)), "refuse", "too small"),
    Case("nifti-gzip-bomb-1gib", _gzip_bomb, "refuse", "decompression bomb"),
    Case("nifti-declares-32767-cubed", _declares_huge, "refuse", "memory"),
    Case("nifti-uint8", _nifti_array(((chest() + 1000) // 5).astype(np.uint8)), "not_hu", "Hounsfield"),
    Case("nifti-int8", _nifti_array(((chest() + 1000) // 10 - 100).astype(np.int8)), "not_hu", "Hounsfield"),
    Case("nifti-uint16-full-range", _nifti_array(np.random.default_rng(1).integers(0, 65535, (4, 32, 32)).astype(np.uint16)), "not_hu", "Hounsfield"),
    Case("nifti-mr-like-float", _nifti_array(((chest() + 1000) / 1.04).astype(np.float32)), "not_hu", "Hounsfield"),
    Case("nifti-all-zero", _nifti_array(np.zeros((4, 32, 32), np.int16)), "not_hu", "Hounsfield"),
]  # fmt: skip


# ---- MetaImage and NRRD ----------------------------------------------------------------------

_MHD = {
    "ObjectType": "Image",
    "NDims": "3",
    "DimSize": "32 32 4",
    "ElementType": "MET_SHORT",
    "ElementSpacing": "0.8 0.8 2.5",
    "Offset": "0 0 0",
    "TransformMatrix": "1 0 0 0 1 0 0 0 1",
    "ElementDataFile": "ct.raw",
}


def write_mhd(folder: Path, name="ct.mhd", raw: bytes | None = None, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ct.raw").write_bytes(chest().tobytes() if raw is None else raw)
    header = {**_MHD, **fields}
    data = header.pop("ElementDataFile")
    text = "".join(f"{k} = {v}\n" for k, v in header.items()) + f"ElementDataFile = {data}\n"
    (folder / name).write_text(text)
    return folder / name


def _mhd(**fields):
    return lambda tmp: write_mhd(tmp / "case", **fields)


def _outside_raw(tmp: Path) -> Path:
    (tmp / "elsewhere.raw").write_bytes(chest().tobytes())
    return write_mhd(tmp / "case", ElementDataFile="../elsewhere.raw")


def _mha_nan(tmp: Path) -> Path:
    return write_image(tmp / "ct.mha", _nan_voxels(0.02))


def _mha_bomb(tmp: Path) -> Path:
    data = zlib.compress(b"\0" * (1 << 20), 9)
    header = {**_MHD, "DimSize": "1024 1024 512", "CompressedData": "True"}
    header["CompressedDataSize"] = str(len(data))
    header.pop("ElementDataFile")
    text = "".join(f"{k} = {v}\n" for k, v in header.items()) + "ElementDataFile = LOCAL\n"
    path = tmp / "bomb.mha"
    path.write_bytes(text.encode() + data)
    return path


def _nrrd_data_file(tmp: Path) -> Path:
    path = tmp / "ct.nrrd"
    path.write_text(
        "NRRD0004\ntype: short\ndimension: 3\nsizes: 32 32 4\nspace: left-posterior-superior\n"
        "space directions: (0.8,0,0) (0,0.8,0) (0,0,2.5)\nendian: little\nencoding: raw\n"
        "space origin: (0,0,0)\ndata file: /etc/passwd\n\n"
    )
    return path


def _nrrd_spacing(tmp: Path) -> Path:
    return write_image(tmp / "ct.nrrd", chest(), spacing=(1e30, 0.8, 2.5))


META_CASES = [
    Case("mhd-data-file-etc-passwd", _mhd(ElementDataFile="/etc/passwd"), "refuse", "ElementDataFile"),
    Case("mhd-data-file-dev-zero", _mhd(ElementDataFile="/dev/zero"), "refuse", "ElementDataFile"),
    Case("mhd-data-file-dotdot", _outside_raw, "refuse", "ElementDataFile"),
    Case("mhd-data-file-list", _mhd(ElementDataFile="LIST"), "refuse", "ElementDataFile"),
    Case("mhd-data-file-pattern", _mhd(ElementDataFile="slice%03d.raw 1 4 1"), "refuse", "ElementDataFile"),
    *(
        Case(f"mhd-spacing-{v}", _mhd(ElementSpacing=f"{v} 0.8 2.5"), "refuse", "ElementSpacing")
        for v in ("0", "-0.8", "nan", "inf", "1e30")
    ),
    Case("mhd-offset-inf", _mhd(Offset="inf 0 0"), "refuse", "Offset"),
    Case("mhd-offset-nan", _mhd(Offset="0 nan 0"), "refuse", "Offset"),
    Case("mhd-transform-nan", _mhd(TransformMatrix="nan 0 0 0 1 0 0 0 1"), "refuse", "TransformMatrix"),
    Case("mhd-transform-singular", _mhd(TransformMatrix="0 0 0 0 0 0 0 0 0"), "refuse", "cannot be read"),
    Case("mhd-data-short", _mhd(DimSize="64 64 8"), "refuse", "cannot be read"),
    Case("mha-nan-voxels", _mha_nan, "repair", "NaN"),
    Case("mha-compressed-bomb", _mha_bomb, "refuse", "decompression bomb"),
    Case("nrrd-data-file-etc-passwd", _nrrd_data_file, "refuse", "data file"),
    Case("nrrd-spacing-1e30", _nrrd_spacing, "refuse", "plausible"),
]  # fmt: skip

CT_CASES = [*DICOM_CASES, *NIFTI_CASES, *META_CASES]


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``folder`` with its size and SHA-256: compare before and after a run."""
    import hashlib

    return {
        str(p.relative_to(folder)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
