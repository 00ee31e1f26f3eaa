"""Is a NIfTI file whole? One cut short (a full disk under a writer that does not report it, an
interrupted copy) reads in SimpleITK without an error, its missing voxels zeros or garbage.

    nifti_shortfall(path) -> str | None    why the file is short, or None (whole, or not NIfTI)

The header says how many bytes the voxels take (dimensions, bits per voxel, offset); a ``.nii``
must be at least that long, a ``.nii.gz`` must decompress to at least that much before its
compressed stream ends. The check stops as soon as that many bytes are seen, so a gzip bomb
costs no more than the voxels its header declares.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

_CHUNK = 1 << 20


def nifti_shortfall(path) -> str | None:
    """Why the NIfTI file ``path`` holds fewer voxel bytes than its header declares, or None."""
    path = Path(path)
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        return None
    compressed = name.endswith(".gz")
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as f:
            head = f.read(540)
    except (OSError, EOFError, zlib.error):
        return None  # not readable as NIfTI at all: the reader says why
    expected = _declared_bytes(head)
    if expected is None:
        return None
    if not compressed:
        have = path.stat().st_size
        if have < expected:
            return f"it holds {have:,} of the {expected:,} bytes its header declares"
        return None
    have, whole = _gunzip_count(path, expected)
    if not whole:
        return f"its compressed data are damaged after {have:,} of {expected:,} bytes"
    if have < expected:
        return (
            f"its compressed data end after {have:,} of the {expected:,} bytes its header declares"
        )
    return None


def _declared_bytes(head: bytes) -> int | None:
    """Offset plus voxel bytes from a NIfTI-1 or NIfTI-2 header; None when it is not one."""
    if len(head) < 348:
        return None
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0]
        if size == 348:
            dims = struct.unpack(order + "8h", head[40:56])
            bitpix = struct.unpack(order + "h", head[72:74])[0]
            offset = struct.unpack(order + "f", head[108:112])[0]
            break
        if size == 540 and len(head) >= 540:
            bitpix = struct.unpack(order + "h", head[14:16])[0]
            dims = struct.unpack(order + "8q", head[16:80])
            offset = struct.unpack(order + "q", head[168:176])[0]
            break
    else:
        return None
    ndim = dims[0]
    if not 1 <= ndim <= 7 or bitpix <= 0 or not offset == offset or offset < 0:
        return None
    n = 1
    for d in dims[1 : ndim + 1]:
        if d <= 0:
            return None
        n *= int(d)
    return int(offset) + (n * int(bitpix) + 7) // 8


def _gunzip_count(path: Path, enough: int) -> tuple[int, bool]:
    """(bytes decompressed, stream sound), stopping once ``enough`` bytes are seen."""
    have, pending = 0, b""
    d = zlib.decompressobj(wbits=31)
    with open(path, "rb") as f:
        while have < enough:
            data = d.unconsumed_tail or pending or f.read(_CHUNK)
            pending = b""
            if not data:  # the file ended (before its stream did, if d.eof is false)
                return have, True
            try:
                have += len(d.decompress(data, _CHUNK))
            except zlib.error:
                return have, False
            if d.eof:
                pending = d.unused_data
                if not pending.startswith(b"\x1f\x8b"):  # no further gzip member
                    return have, True
                d = zlib.decompressobj(wbits=31)
    return have, True
