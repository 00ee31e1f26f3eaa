"""DICOM headers: one file's identity, geometry and pixel format, read without decoding pixels.

:func:`read_image_header` reads a file's header (fast raw parse, else pydicom with the pixels left
on disk) and returns a :class:`DicomImage` describing each frame (position, orientation, spacing,
rescale) and where its pixels are; :class:`NotCtImage` says, in one phrase that follows the file
name, why a file is not a usable CT image (``kind``: ``"not_dicom"``, ``"broken"``, ``"non_image"``
or ``"not_ct"``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from napari_lungkd.io.dicom.tags import (
    DIRECTORY_RECORDS,
    PER_FRAME_GROUPS,
    PIXEL_DATA,
    DatasetHeader,
    QuickHeader,
    quick_header,
)
from napari_lungkd.io.sniff import looks_like_dicom_head

_DEFER_BYTES = 4096  # values larger than this (the pixels) stay on disk until they are needed
_NATIVE_LITTLE_ENDIAN = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
_CT_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image Storage
}
_NON_IMAGE_MODALITIES = {
    "RTSTRUCT": "an RT structure set",
    "RTPLAN": "an RT plan",
    "RTDOSE": "an RT dose",
    "RTRECORD": "an RT treatment record",
    "SR": "a structured report",
    "SEG": "a segmentation",
    "KO": "a key object selection",
    "PR": "a presentation state",
    "REG": "a registration object",
}
_MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"
T = {  # the tags read below, by keyword
    "SOPClassUID": 0x00080016,
    "SOPInstanceUID": 0x00080018,
    "Modality": 0x00080060,
    "SeriesInstanceUID": 0x0020000E,
    "InstanceNumber": 0x00200013,
    "ImagePositionPatient": 0x00200032,
    "ImageOrientationPatient": 0x00200037,
    "SamplesPerPixel": 0x00280002,
    "NumberOfFrames": 0x00280008,
    "Rows": 0x00280010,
    "Columns": 0x00280011,
    "PixelSpacing": 0x00280030,
    "BitsAllocated": 0x00280100,
    "BitsStored": 0x00280101,
    "PixelRepresentation": 0x00280103,
    "PixelPaddingValue": 0x00280120,
    "PixelPaddingRangeLimit": 0x00280121,
    "RescaleIntercept": 0x00281052,
    "RescaleSlope": 0x00281053,
}


class NotCtImage(Exception):
    """A file that is not a usable CT image; ``reason`` is a phrase that follows the file name."""

    def __init__(self, kind: str, reason: str, modality: str | None = None):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.modality = modality


@dataclass(frozen=True)
class Frame:
    """One 2-D image (a slice): a single-frame file, or one frame of a multi-frame file."""

    path: Path
    frame_index: int | None
    sop_uid: str
    instance_number: int | None
    ipp: tuple[float, float, float] | None
    iop: tuple[float, ...] | None
    pixel_spacing_mm: tuple[float, float] | None  # (row spacing, column spacing)
    slope: float
    intercept: float


@dataclass(frozen=True)
class PixelFormat:
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    transfer_syntax: str
    padding: tuple[int, int] | None  # stored values [low, high] that mean "outside the scan"
    raw_offset: int | None  # file offset of native little-endian 16-bit pixels (fast path)


@dataclass(frozen=True)
class DicomImage:
    path: Path
    series_uid: str
    frames: tuple[Frame, ...]
    pixels: PixelFormat
    header: QuickHeader | DatasetHeader

    @property
    def multi_frame(self) -> bool:
        return self.frames[0].frame_index is not None


def looks_like_dicom(path: Path) -> bool:
    """True for files with the DICM marker, or that start like a DICOM data set without one.

    Raises :class:`NotCtImage` (``"broken"``) when the file cannot be opened at all.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise NotCtImage("broken", f"cannot be opened ({exc.strerror or exc})") from exc
    return looks_like_dicom_head(head)


def read_dataset(path: Path) -> Dataset:
    """Read a DICOM data set with pydicom, pixels deferred; :class:`NotCtImage` if not DICOM/broken."""
    if not looks_like_dicom(path):
        raise NotCtImage("not_dicom", "is not a DICOM file (no DICM marker, no DICOM tags)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, defer_size=_DEFER_BYTES, force=True)
        except Exception as exc:  # pydicom raises many types on broken files
            raise NotCtImage("broken", f"cannot be parsed as DICOM ({_first_line(exc)})") from exc
    if len(ds) == 0:
        said = f" (pydicom: {_first_line(caught[0].message)})" if caught else ""
        raise NotCtImage(
            "broken", f"is truncated or corrupt: it holds no DICOM data elements{said}"
        )
    return ds


def read_image_header(path: Path) -> DicomImage:
    """Read one file's header and check that it is a CT image with pixels; describe its frames."""
    try:
        quick = quick_header(path)
    except OSError as exc:
        raise NotCtImage("broken", f"cannot be read ({exc.strerror or exc})") from exc
    header = quick if quick is not None else DatasetHeader(read_dataset(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's value-validation chatter
            return _describe(path, header)
    except NotCtImage:
        raise
    except Exception as exc:  # a malformed value (bad VR, wrong multiplicity...)
        raise NotCtImage("broken", f"has an unreadable header value ({_first_line(exc)})") from exc


def _text(header, keyword: str) -> str:
    value = header.value(T[keyword])
    return "\\".join(value) if isinstance(value, list) else str(value or "").strip()


def _describe(path: Path, h) -> DicomImage:
    sop_class = _text(h, "SOPClassUID")
    modality = _text(h, "Modality").upper()
    if sop_class == _MEDIA_DIRECTORY or DIRECTORY_RECORDS in h:
        raise NotCtImage("non_image", "is a DICOMDIR (a media index), not an image", "DICOMDIR")
    if modality in _NON_IMAGE_MODALITIES:
        what = _NON_IMAGE_MODALITIES[modality]
        raise NotCtImage("non_image", f"is {what} (modality {modality}), not a CT image", modality)
    if modality and modality != "CT":
        raise NotCtImage("not_ct", f"is not CT: its modality is {modality}", modality)
    if not modality and sop_class not in _CT_SOP_CLASSES:
        if PIXEL_DATA not in h and T["Rows"] not in h:
            raise NotCtImage(
                "non_image", "has no modality, no SOP class and no image: not a CT image"
            )
        raise NotCtImage("not_ct", "has no Modality and is not a CT SOP class, so it is not CT")
    if PIXEL_DATA not in h:
        raise NotCtImage("non_image", "has no pixel data (a CT header without an image)", modality)
    for key in ("Rows", "Columns", "BitsAllocated"):
        if h.value(T[key]) is None:
            raise NotCtImage("broken", f"has pixel data but no {key}")
    samples = int(h.value(T["SamplesPerPixel"]) or 1)
    if samples != 1:
        raise NotCtImage("not_ct", f"has {samples} samples per pixel (colour), CT is greyscale")
    n_frames = int(float(h.value(T["NumberOfFrames"]) or 1))
    pixels = _pixel_format(h, n_frames)
    if n_frames > 1 or PER_FRAME_GROUPS in h:
        if not isinstance(h, DatasetHeader):
            h = DatasetHeader(read_dataset(path))
        frames = _enhanced_frames(path, h.ds, n_frames)
    else:
        frames = (_single_frame(path, h),)
    series_uid = _text(h, "SeriesInstanceUID") or f"(no series UID) {path}"
    return DicomImage(path, series_uid, frames, pixels, h)


def _pixel_format(h, n_frames: int) -> PixelFormat:
    bits_allocated = int(h.value(T["BitsAllocated"]))
    bits_stored = int(h.value(T["BitsStored"]) or bits_allocated)
    signed = int(h.value(T["PixelRepresentation"]) or 0) == 1
    rows, columns = int(h.value(T["Rows"])), int(h.value(T["Columns"]))
    expected = rows * columns * 2
    native_16 = bits_allocated == 16 and n_frames == 1
    raw_offset = None
    if isinstance(h, QuickHeader):
        syntax = h.transfer_syntax
        if (
            native_16
            and syntax in _NATIVE_LITTLE_ENDIAN
            and h.pixel_length in (expected, expected + 1)
        ):
            raw_offset = h.pixel_offset
    else:
        ds = h.ds
        syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
        if not syntax:  # no meta header: pydicom guessed the encoding while reading
            syntax = "1.2.840.10008.1.2" if ds.is_implicit_VR else "1.2.840.10008.1.2.1"
            if not ds.is_little_endian:
                syntax = "1.2.840.10008.1.2.2"
        elem = ds.get_item(PIXEL_DATA, keep_deferred=True)
        if (
            native_16
            and syntax in _NATIVE_LITTLE_ENDIAN
            and isinstance(elem, RawDataElement)
            and elem.value is None  # still on disk (deferred)
            and elem.length in (expected, expected + 1)
        ):
            raw_offset = int(elem.value_tell)
    padding = None
    low = h.value(T["PixelPaddingValue"])
    if isinstance(low, (int, float, str)):
        high = h.value(T["PixelPaddingRangeLimit"])
        low = _as_stored(low, bits_allocated, signed)
        high = (
            low
            if not isinstance(high, (int, float, str))
            else _as_stored(high, bits_allocated, signed)
        )
        padding = (min(low, high), max(low, high))
    return PixelFormat(
        rows, columns, bits_allocated, bits_stored, signed, syntax, padding, raw_offset
    )


def _as_stored(value, bits: int, signed: bool) -> int:
    """A padding value as a stored pixel value: US-encoded negatives (63536) become -2000."""
    value = int(float(value))
    if signed and value >= 2 ** (bits - 1):
        value -= 2**bits
    return value


def _floats(value, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, int, float)):
        value = [value]
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _single_frame(path: Path, h) -> Frame:
    number = h.value(T["InstanceNumber"])
    try:
        instance_number = int(float(number)) if number is not None else None
    except (TypeError, ValueError):
        instance_number = None
    slope = h.value(T["RescaleSlope"])
    intercept = h.value(T["RescaleIntercept"])
    return Frame(
        path=path,
        frame_index=None,
        sop_uid=_text(h, "SOPInstanceUID"),
        instance_number=instance_number,
        ipp=_floats(h.value(T["ImagePositionPatient"]), 3),  # type: ignore[arg-type]
        iop=_floats(h.value(T["ImageOrientationPatient"]), 6),
        pixel_spacing_mm=_floats(h.value(T["PixelSpacing"]), 2),  # type: ignore[arg-type]
        slope=float(slope) if slope not in (None, "") else 1.0,
        intercept=float(intercept) if intercept not in (None, "") else 0.0,
    )


def _group_value(groups: list[Dataset | None], sequence: str, key: str):
    """The first value of ``key`` inside ``sequence`` found in per-frame then shared groups."""
    for group in groups:
        seq = group.get(sequence) if group is not None else None
        if seq:
            value = seq[0].get(key)
            if value is not None:
                return value
    return None


def _enhanced_frames(path: Path, ds: Dataset, n_frames: int) -> tuple[Frame, ...]:
    """Frames of an Enhanced (multi-frame) CT from its functional group sequences."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame or len(per_frame) != n_frames:
        raise NotCtImage(
            "broken",
            f"has {n_frames} frames but no per-frame positions "
            "(PerFrameFunctionalGroupsSequence), so its slices cannot be placed",
        )
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    sop_uid = str(ds.get("SOPInstanceUID", "") or "")
    default_slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    default_intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    frames = []
    for index, item in enumerate(per_frame):
        groups = [item, shared]
        slope = _group_value(groups, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _group_value(groups, "PixelValueTransformationSequence", "RescaleIntercept")
        position = _group_value(groups, "PlanePositionSequence", "ImagePositionPatient")
        orientation = _group_value(groups, "PlaneOrientationSequence", "ImageOrientationPatient")
        spacing = _group_value(groups, "PixelMeasuresSequence", "PixelSpacing")
        frames.append(
            Frame(
                path=path,
                frame_index=index,
                sop_uid=sop_uid,
                instance_number=index + 1,
                ipp=_floats(position, 3),  # type: ignore[arg-type]
                iop=_floats(orientation, 6),
                pixel_spacing_mm=_floats(spacing, 2),  # type: ignore[arg-type]
                slope=float(slope) if slope is not None else default_slope,
                intercept=float(intercept) if intercept is not None else default_intercept,
            )
        )
    return tuple(frames)


def _first_line(message: Any) -> str:
    text = str(message).strip().splitlines()
    return text[0][:200] if text else type(message).__name__
