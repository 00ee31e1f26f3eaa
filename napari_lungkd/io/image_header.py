"""Image file headers checked before SimpleITK reads them: what ITK would silently repair or trust.

SimpleITK reads a NIfTI ``pixdim`` of 0, NaN or inf as 1 mm, NaN voxels of a float NIfTI as 0 and
a MetaImage ``Offset = inf`` as 0; it follows a MetaImage ``ElementDataFile`` (or an NRRD ``data
file``) anywhere on disk (``/etc/passwd``, ``/dev/zero``) and it inflates a gzip bomb to whatever
size its header declares. So the headers are read here first, and :func:`precheck` raises
:class:`~napari_lungkd.errors.CtLoadError` with one sentence naming the file and the field, or
returns :class:`HeaderFacts` (warnings, the NIfTI header for the NaN scan).
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_lungkd.errors import CtLoadError
from napari_lungkd.io.validate import spacing_problem

MAX_COMPRESSION_RATIO = 200
"""A compressed CT that declares more than this many times its size inflated is refused..."""
BOMB_FLOOR_BYTES = 256 * 2**20
"""...once it declares at least this much (small, smooth synthetic volumes compress well)."""
_HEADER_READ = 65536
_NIFTI_FLOAT = {16: np.float32, 64: np.float64}


@dataclass
class HeaderFacts:
    warnings: list[str] = field(default_factory=list)
    nifti: dict | None = None
    data_bytes: int | None = None
    """Bytes of compressed (or raw) data on disk, for the decompression-ratio check."""
    compressed: bool = False


def precheck(path: Path) -> HeaderFacts:
    """Check the header of a NIfTI, MetaImage or NRRD file before SimpleITK reads it."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return _nifti(path)
    if name.endswith((".mhd", ".mha")):
        return _metaimage(path)
    if name.endswith(".nrrd"):
        return _nrrd(path)
    return HeaderFacts()


def check_declared_size(path: Path, facts: HeaderFacts, declared_bytes: int) -> None:
    """Refuse a compressed file whose declared size is implausibly larger than its data."""
    if not facts.compressed or facts.data_bytes is None or declared_bytes < BOMB_FLOOR_BYTES:
        return
    ratio = declared_bytes / max(facts.data_bytes, 1)
    if ratio > MAX_COMPRESSION_RATIO:
        raise CtLoadError(
            f"{path} declares {declared_bytes / 2**20:.0f} MiB of voxels but holds only "
            f"{facts.data_bytes / 2**20:.1f} MiB of compressed data (ratio {ratio:.0f}:1), "
            "which no CT compresses to: a decompression bomb or a broken header; it was not loaded."
        )


# ---- NIfTI -----------------------------------------------------------------------------------


def _read_head(path: Path, n: int) -> bytes:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read(n)
        with open(path, "rb") as fh:
            return fh.read(n)
    except (OSError, EOFError, zlib.error):
        return b""  # SimpleITK then says what is wrong with the file


def _nifti(path: Path) -> HeaderFacts:
    facts = HeaderFacts()
    if path.name.lower().endswith(".gz"):
        facts.compressed = True
        facts.data_bytes = path.stat().st_size
    raw = _read_head(path, 348)
    if len(raw) < 348:
        return facts
    for end in "<>":
        if struct.unpack_from(end + "i", raw, 0)[0] == 348:
            break
    else:
        return facts  # NIfTI-2 or not NIfTI: SimpleITK decides
    dim = struct.unpack_from(end + "8h", raw, 40)
    datatype, bitpix = struct.unpack_from(end + "2h", raw, 70)
    pixdim = struct.unpack_from(end + "8f", raw, 76)
    vox_offset, slope, inter = struct.unpack_from(end + "3f", raw, 108)
    qform_code, sform_code = struct.unpack_from(end + "2h", raw, 252)
    quatern = struct.unpack_from(end + "6f", raw, 256)
    srow = struct.unpack_from(end + "12f", raw, 280)
    ndim = dim[0]
    if not 1 <= ndim <= 7 or any(d < 0 for d in dim[1 : ndim + 1]):
        raise CtLoadError(f"{path}: the NIfTI header's dim {list(dim)} is not an image size.")
    spatial = min(ndim, 3)
    names = [f"pixdim[{i}]" for i in range(1, spatial + 1)]
    problem = spacing_problem(pixdim[1 : spatial + 1], names)
    if problem:
        raise CtLoadError(f"{path}: the NIfTI header's {problem}; it was not loaded.")
    if qform_code > 0 and not np.isfinite(quatern).all():
        raise CtLoadError(
            f"{path}: the NIfTI header's qform (quatern_b/c/d, qoffset_x/y/z) holds "
            f"non-finite values {tuple(round(v, 3) for v in quatern)}; it was not loaded."
        )
    if sform_code > 0 and not np.isfinite(srow).all():
        raise CtLoadError(
            f"{path}: the NIfTI header's sform (srow_x/y/z) holds non-finite values; "
            "it was not loaded."
        )
    if not np.isfinite(slope):
        facts.warnings.append(
            f"the NIfTI header's scl_slope is {slope}; it was ignored (values read unscaled)"
        )
    elif slope < 0:
        raise CtLoadError(
            f"{path}: the NIfTI header's scl_slope is {slope:g}; a negative slope turns HU "
            "upside down; it was not loaded."
        )
    elif slope != 0 and not np.isfinite(inter):
        facts.warnings.append(
            f"the NIfTI header's scl_inter is {inter}; it was ignored (taken as 0)"
        )
    facts.nifti = {
        "endian": end,
        "dim": dim,
        "datatype": datatype,
        "bitpix": bitpix,
        "vox_offset": vox_offset,
    }
    return facts


def nifti_non_finite(path: Path, nifti: dict, n_voxels: int) -> np.ndarray | None:
    """Flat indices of the NaN/inf voxels of a float NIfTI (which SimpleITK reads as 0), or None."""
    dtype = _NIFTI_FLOAT.get(nifti["datatype"])
    if dtype is None or not np.isfinite(nifti["vox_offset"]):
        return None
    dtype = np.dtype(dtype).newbyteorder(nifti["endian"])
    offset = int(nifti["vox_offset"])
    chunk = 1 << 22  # voxels per read
    found = []
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            fh.seek(offset)
            done = 0
            while done < n_voxels:
                want = min(chunk, n_voxels - done)
                data = fh.read(want * dtype.itemsize)
                values = np.frombuffer(data[: len(data) // dtype.itemsize * dtype.itemsize], dtype)
                bad = np.flatnonzero(~np.isfinite(values))
                if bad.size:
                    found.append(bad + done)
                if values.size < want:
                    break
                done += values.size
    except (OSError, EOFError, zlib.error):
        return None
    return np.concatenate(found) if found else None


# ---- MetaImage and NRRD ----------------------------------------------------------------------


def _finite_numbers(text: str) -> tuple[list[float] | None, bool]:
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        return None, False
    return values, bool(values) and bool(np.isfinite(values).all())


def _metaimage(path: Path) -> HeaderFacts:
    facts = HeaderFacts()
    head = _read_head(path, _HEADER_READ).decode("latin-1")
    fields: dict[str, str] = {}
    header_len = 0
    for line in head.splitlines(keepends=True):
        header_len += len(line.encode("latin-1"))
        key, sep, value = line.partition("=")
        if not sep:
            continue
        fields[key.strip().lower()] = value.strip()
        if key.strip().lower() == "elementdatafile":
            break
    for key, tag in (("elementspacing", "ElementSpacing"), ("elementsize", "ElementSize")):
        if key in fields:
            values = fields[key].split()
            problem = spacing_problem(values, [f"{tag}[{i}]" for i in range(len(values))])
            if problem:
                raise CtLoadError(f"{path}: the MetaImage header's {problem}; it was not loaded.")
            break
    for key, tag in (
        ("offset", "Offset"),
        ("position", "Position"),
        ("origin", "Origin"),
        ("transformmatrix", "TransformMatrix"),
        ("rotation", "Rotation"),
        ("orientation", "Orientation"),
        ("centerofrotation", "CenterOfRotation"),
    ):
        if key in fields:
            _, finite = _finite_numbers(fields[key])
            if not finite:
                raise CtLoadError(
                    f"{path}: the MetaImage header's {tag} is {fields[key]!r}, not finite "
                    "numbers; it was not loaded."
                )
    facts.compressed = fields.get("compresseddata", "").lower() in ("true", "1")
    data_file = fields.get("elementdatafile")
    if data_file is None:
        return facts
    if data_file.upper() == "LOCAL":
        facts.data_bytes = max(path.stat().st_size - header_len, 0)
    else:
        target = _data_file(path, data_file, "MetaImage ElementDataFile")
        facts.data_bytes = target.stat().st_size
    if facts.compressed and fields.get("compresseddatasize"):
        try:
            facts.data_bytes = min(facts.data_bytes, int(float(fields["compresseddatasize"])))
        except ValueError:
            pass
    return facts


def _nrrd(path: Path) -> HeaderFacts:
    facts = HeaderFacts()
    head = _read_head(path, _HEADER_READ).decode("latin-1")
    fields: dict[str, str] = {}
    for line in head.split("\n")[1:]:
        if not line.strip():
            break
        key, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            fields[key.strip().lower()] = value.strip().lstrip("=").strip()
    facts.compressed = fields.get("encoding", "raw").lower() in ("gzip", "gz", "bzip2", "bz2")
    data_file = fields.get("data file") or fields.get("datafile")
    if data_file:
        target = _data_file(path, data_file, "NRRD data file")
        facts.data_bytes = target.stat().st_size
    else:
        facts.data_bytes = path.stat().st_size
    return facts


def _data_file(header: Path, name: str, what: str) -> Path:
    """The data file a header names: a regular file in the header's own folder (or below it)."""
    if name.upper().startswith("LIST") or re.search(r"%\d*d", name):
        raise CtLoadError(
            f"{header}: its {what} {name!r} is a list of files, which napari-lungkd does not "
            "read; it was not loaded."
        )
    folder = header.parent.absolute()
    candidate = Path(name)
    target = Path(os.path.normpath(folder / candidate))  # lexical: ".." cannot climb out
    if candidate.is_absolute() or not target.is_relative_to(folder):
        raise CtLoadError(
            f"{header}: its {what} {name!r} points outside the header's folder; it was not loaded."
        )
    if not target.is_file():
        raise CtLoadError(
            f"{header}: its {what} {name!r} is missing or not a regular file; it was not loaded."
        )
    return target
