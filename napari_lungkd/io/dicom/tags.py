"""DICOM tags: the few header values a CT loader needs, read fast, from raw bytes or from pydicom.

pydicom builds every data element of a file as a Python object; for a 133-file series that is most
of the loading time. :func:`quick_header` instead walks the start of a Part-10 file whose data set is
little-endian (every transfer syntax but big endian and deflate), keeps the raw bytes of the tags in
:data:`WANTED`, and stops at the pixel data, noting its file offset. Anything unusual (no DICM
marker, sequences of undefined length before the pixels, a header larger than the first read)
returns None and the caller uses pydicom instead; :class:`DatasetHeader` gives a pydicom data set
the same small interface (``value(tag)``, ``tag in header``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

PIXEL_DATA = 0x7FE00010
PER_FRAME_GROUPS = 0x52009230
SHARED_GROUPS = 0x52009229
DIRECTORY_RECORDS = 0x00041220
WANTED = {
    0x00080016,  # SOPClassUID
    0x00080018,  # SOPInstanceUID
    0x00080060,  # Modality
    0x0008103E,  # SeriesDescription
    0x00100020,  # PatientID
    0x00180050,  # SliceThickness
    0x00180088,  # SpacingBetweenSlices
    0x0020000E,  # SeriesInstanceUID
    0x00200013,  # InstanceNumber
    0x00200032,  # ImagePositionPatient
    0x00200037,  # ImageOrientationPatient
    0x00280002,  # SamplesPerPixel
    0x00280008,  # NumberOfFrames
    0x00280010,  # Rows
    0x00280011,  # Columns
    0x00280030,  # PixelSpacing
    0x00280100,  # BitsAllocated
    0x00280101,  # BitsStored
    0x00280103,  # PixelRepresentation
    0x00280120,  # PixelPaddingValue
    0x00280121,  # PixelPaddingRangeLimit
    0x00281052,  # RescaleIntercept
    0x00281053,  # RescaleSlope
}
_NEEDS_PYDICOM = {PER_FRAME_GROUPS, SHARED_GROUPS, DIRECTORY_RECORDS}
_NOT_LITTLE_ENDIAN_DATASET = {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}  # BE, deflate
IMPLICIT_LE = "1.2.840.10008.1.2"
_LONG_VRS = {
    b"OB",
    b"OW",
    b"OF",
    b"OD",
    b"OL",
    b"OV",
    b"SQ",
    b"UT",
    b"UN",
    b"UC",
    b"UR",
    b"SV",
    b"UV",
}
_BINARY = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
_FIRST_READ = 32768
_UNDEFINED = 0xFFFFFFFF


@dataclass(frozen=True)
class QuickHeader:
    """Raw values of the :data:`WANTED` tags of one file, and where its pixel data is."""

    values: dict[int, tuple[str | None, bytes]]
    transfer_syntax: str
    pixel_offset: int | None  # file offset of the pixel data value (None: no pixel data)
    pixel_length: int | None  # None for encapsulated (compressed) pixel data

    def __contains__(self, tag: int) -> bool:
        return tag in self.values or (tag == PIXEL_DATA and self.pixel_offset is not None)

    def value(self, tag: int):
        item = self.values.get(tag)
        return None if item is None else convert(item[0] or dictionary_VR(tag), item[1], True)


class DatasetHeader:
    """A pydicom data set (pixels deferred) behind the same interface as :class:`QuickHeader`."""

    def __init__(self, ds: Dataset):
        self.ds = ds

    def __contains__(self, tag: int) -> bool:
        return tag in self.ds

    def value(self, tag: int):
        elem = self.ds.get_item(tag, keep_deferred=True)
        if elem is None:
            return None
        if isinstance(elem, RawDataElement):  # convert the bytes ourselves: fast, no validation
            if not elem.value:
                return None
            return convert(elem.VR or dictionary_VR(tag), elem.value, elem.is_little_endian)
        value = elem.value
        if value is None or value == "":
            return None
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, str):
            return value.strip()
        try:
            return [str(v) for v in value]
        except TypeError:
            return str(value)


def convert(vr: str, raw: bytes, little_endian: bool):
    """Text as ``str`` (multi-valued: list of ``str``), binary integers/floats as numbers."""
    if not raw:
        return None
    if vr == "US or SS":
        vr = "US"
    code = _BINARY.get(vr)
    if code is not None:
        size = struct.calcsize(code)
        n = len(raw) // size
        if n == 0:
            return None
        values = struct.unpack(("<" if little_endian else ">") + code * n, raw[: n * size])
        return values[0] if n == 1 else list(values)
    text = raw.decode("latin-1").strip(" \x00")
    if "\\" in text:
        return [t.strip(" \x00") for t in text.split("\\")]
    return text or None


def quick_header(path: Path) -> QuickHeader | None:
    """Parse the start of a Part-10 little-endian file; None when pydicom must do it."""
    with open(path, "rb") as fh:
        buf = fh.read(_FIRST_READ)
    if len(buf) < 140 or buf[128:132] != b"DICM":
        return None
    pos, syntax = 132, None
    while pos + 8 <= len(buf):  # file meta group: always explicit VR little endian
        group, element = struct.unpack_from("<HH", buf, pos)
        if group != 0x0002:
            break
        pos, length, _ = _element(buf, pos, explicit=True)
        if length == _UNDEFINED or pos + length > len(buf):
            return None
        if element == 0x0010:
            syntax = buf[pos : pos + length].decode("ascii", "replace").strip(" \x00")
        pos += length
    if not syntax or syntax in _NOT_LITTLE_ENDIAN_DATASET:
        return None
    explicit = syntax != IMPLICIT_LE
    values: dict[int, tuple[str | None, bytes]] = {}
    while True:
        if pos + 8 > len(buf):
            if pos == len(buf) and len(buf) < _FIRST_READ:  # the whole file: no pixel data
                return QuickHeader(values, syntax, None, None)
            return None
        group, element = struct.unpack_from("<HH", buf, pos)
        tag = (group << 16) | element
        start = pos
        pos, length, vr = _element(buf, pos, explicit)
        if pos > len(buf):
            return None
        if tag == PIXEL_DATA:
            return QuickHeader(values, syntax, pos, None if length == _UNDEFINED else length)
        if tag in _NEEDS_PYDICOM or length == _UNDEFINED or tag > PIXEL_DATA:
            return None
        if tag in WANTED:
            if pos + length > len(buf):
                return None
            values[tag] = (vr, bytes(buf[pos : pos + length]))
        pos += length
        if pos <= start:
            return None


def _element(buf: bytes, pos: int, explicit: bool) -> tuple[int, int, str | None]:
    """(value offset, value length, VR or None) of the element whose tag starts at ``pos``."""
    if not explicit:
        return pos + 8, struct.unpack_from("<I", buf, pos + 4)[0], None
    vr = buf[pos + 4 : pos + 6]
    if vr in _LONG_VRS:
        if pos + 12 > len(buf):
            return len(buf) + 1, 0, None
        return pos + 12, struct.unpack_from("<I", buf, pos + 8)[0], vr.decode("ascii")
    return pos + 8, struct.unpack_from("<H", buf, pos + 6)[0], vr.decode("ascii", "replace")
