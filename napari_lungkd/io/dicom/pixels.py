"""DICOM pixels: decode the ordered slices of a series straight into one preallocated HU volume.

Uncompressed little-endian 16-bit slices (most research CT, all of LIDC-IDRI) are read from the
file offset that the header pass found, directly into their row of the volume, with no pydicom
decode; everything else (JPEG, JPEG-LS, JPEG 2000, RLE, big endian, deflated, multi-frame) goes
through pydicom's decoders (pylibjpeg plugins). Slices are decoded on a small thread pool.

HU = stored x RescaleSlope + RescaleIntercept, per slice; stored values equal to PixelPaddingValue
(or inside the PixelPaddingValue..PixelPaddingRangeLimit range) become air, -1024 HU. The volume
is int16 when every slope and intercept is integral and the values fit, float32 otherwise.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset

from napari_lungkd.io.dicom.header import DicomImage, Frame, NotCtImage

AIR_HU = -1024
_INT16_MIN, _INT16_MAX = -32768, 32767


class _NeedsFloat(Exception):
    """An integral rescale whose values do not fit int16: read the volume again as float32."""


@dataclass
class PixelVolume:
    hu: np.ndarray
    padded_voxels: int
    failures: dict[Path, str] = field(default_factory=dict)
    decoder_warnings: list[str] = field(default_factory=list)


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def read_volume(
    frames: tuple[Frame, ...], images: dict[Path, DicomImage], workers: int | None = None
) -> PixelVolume:
    """Decode ``frames`` (in slice order) into a ``(z, y, x)`` HU array.

    Files that fail to decode are listed in ``failures`` (path -> reason); their rows are left
    unfilled, and the caller drops them.
    """
    workers = default_workers() if workers is None else workers
    integral = all(float(f.slope).is_integer() and float(f.intercept).is_integer() for f in frames)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = None
        if integral:
            try:
                result = _read(frames, images, np.int16, workers)
            except _NeedsFloat:
                result = None
        if result is None:
            result = _read(frames, images, np.float32, workers)
    result.decoder_warnings = sorted({str(w.message).splitlines()[0][:200] for w in caught})
    return result


def _read(frames, images, dtype, workers: int) -> PixelVolume:
    first = images[frames[0].path].pixels
    hu = np.empty((len(frames), first.rows, first.columns), dtype=dtype)
    failures: dict[Path, str] = {}
    single: list[tuple[int, Frame]] = []
    multi: dict[Path, list[tuple[int, Frame]]] = {}
    for slot, frame in enumerate(frames):
        if frame.frame_index is None:
            single.append((slot, frame))
        else:
            multi.setdefault(frame.path, []).append((slot, frame))

    def one(item: tuple[int, Frame]) -> int:
        slot, frame = item
        try:
            return _read_single(hu[slot], images[frame.path], frame)
        except (_NeedsFloat, MemoryError):
            raise
        except NotCtImage as exc:
            failures[frame.path] = exc.reason
        except Exception as exc:  # any decoder failure is this file's problem
            failures[frame.path] = f"has pixel data that cannot be decoded ({_first_line(exc)})"
        return 0

    needs_decoder = any(images[f.path].pixels.raw_offset is None for _, f in single)
    if workers > 1 and len(single) >= 8 and needs_decoder:  # raw reads gain nothing from threads
        with ThreadPoolExecutor(max_workers=workers) as pool:
            padded = sum(pool.map(one, single))
    else:
        padded = sum(map(one, single))

    for path, items in multi.items():
        try:
            stack = _decode(images[path])
        except Exception as exc:
            failures[path] = f"has pixel data that cannot be decoded ({_first_line(exc)})"
            continue
        if stack.ndim == 2:
            stack = stack[None]
        for slot, frame in items:
            padded += _rescale_into(
                hu[slot], stack[frame.frame_index], frame, images[path].pixels.padding
            )
    return PixelVolume(hu=hu, padded_voxels=padded, failures=failures)


def _read_single(dst: np.ndarray, image: DicomImage, frame: Frame) -> int:
    fmt = image.pixels
    if fmt.raw_offset is not None:
        if dst.dtype == np.int16 and fmt.signed:
            raw = dst  # read the stored values straight into the volume
        else:
            raw = np.empty((fmt.rows, fmt.columns), dtype=np.int16 if fmt.signed else np.uint16)
        _read_exact(image.path, fmt.raw_offset, raw)
    else:
        raw = _decode(image)
        if raw.shape != (fmt.rows, fmt.columns):
            raise NotCtImage(
                "broken",
                f"decodes to shape {raw.shape}, not Rows x Columns {fmt.rows}x{fmt.columns}",
            )
    return _rescale_into(dst, raw, frame, fmt.padding)


def _read_exact(path: Path, offset: int, out: np.ndarray) -> None:
    view = memoryview(out).cast("B")
    done = 0
    with open(path, "rb", buffering=0) as fh:
        fh.seek(offset)
        while done < len(view):
            n = fh.readinto(view[done:])
            if not n:
                break
            done += n
    if done != len(view):
        raise NotCtImage(
            "broken", f"is truncated: its pixel data has {done} of the {len(view)} bytes expected"
        )


def _decode(image: DicomImage) -> np.ndarray:
    """Decode with pydicom (and its pylibjpeg plugins); re-reads the file so no copy is cached."""
    ds = pydicom.dcmread(image.path, force=True)
    if len(ds) == 0 or "PixelData" not in ds:  # pydicom gives up on some truncated files quietly
        raise NotCtImage("broken", "is truncated or corrupt: pydicom reads no pixel data from it")
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        meta = getattr(ds, "file_meta", None) or FileMetaDataset()
        meta.TransferSyntaxUID = image.pixels.transfer_syntax
        ds.file_meta = meta
    return ds.pixel_array


def _rescale_into(dst: np.ndarray, raw: np.ndarray, frame: Frame, padding) -> int:
    """Write HU of ``raw`` into ``dst`` (may be the same array); return the padded pixel count."""
    slope, intercept = frame.slope, frame.intercept
    pad = None
    n_pad = 0
    if padding is not None:
        low, high = padding
        pad = (raw == low) if low == high else ((raw >= low) & (raw <= high))
        n_pad = int(np.count_nonzero(pad))
        if n_pad == 0:
            pad = None
    if dst.dtype == np.int16:
        values = raw if pad is None else raw[~pad]
        lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
        ends = (lo * slope + intercept, hi * slope + intercept)
        if min(ends) < _INT16_MIN or max(ends) > _INT16_MAX:
            raise _NeedsFloat
        if raw is dst and slope == 1 and _INT16_MIN <= intercept <= _INT16_MAX:
            np.add(dst, np.int16(intercept), out=dst)
        else:
            np.copyto(dst, raw.astype(np.int32) * int(slope) + int(intercept), casting="unsafe")
    else:
        np.multiply(raw, np.float32(slope), out=dst, casting="unsafe")
        dst += np.float32(intercept)
    if pad is not None:
        dst[pad] = AIR_HU
    return n_pad


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


# ---- impossible values: repaired with a warning, or refused ---------------------------------

_MAX_SLOPE, _MAX_INTERCEPT = 1000.0, 100000.0
_MAX_PLAUSIBLE_HU = 31000  # CT's extended scale ends near 30,700 HU


def _rescale_ok(frame: Frame) -> bool:
    s, b = frame.slope, frame.intercept
    return bool(
        np.isfinite(s) and 0 < s <= _MAX_SLOPE and np.isfinite(b) and abs(b) <= _MAX_INTERCEPT
    )


def check_rescale(frames: list[Frame], where: str) -> tuple[list[Frame], list[str]]:
    """Slices whose RescaleSlope is NaN, inf, 0 or negative, or whose RescaleIntercept is NaN or
    inf, get the series' most common valid pair, with a warning naming a file; refused
    (:class:`CtLoadError`) when no slice has a valid pair."""
    from collections import Counter
    from dataclasses import replace

    from napari_lungkd.errors import CtLoadError

    bad = [f for f in frames if not _rescale_ok(f)]
    if not bad:
        return frames, []
    first = bad[0]
    value = f"RescaleSlope {first.slope:g}, RescaleIntercept {first.intercept:g}"
    good = Counter((f.slope, f.intercept) for f in frames if _rescale_ok(f))
    if not good:
        raise CtLoadError(
            f"{where}: no slice has a usable RescaleSlope/RescaleIntercept (e.g. {first.path}: "
            f"{value}), so its values cannot be turned into HU; it was not loaded."
        )
    slope, intercept = good.most_common(1)[0][0]
    fixed = [f if _rescale_ok(f) else replace(f, slope=slope, intercept=intercept) for f in frames]
    return fixed, [
        f"{len(bad)} slice(s) had an impossible RescaleSlope/RescaleIntercept (e.g. "
        f"{first.path.name}: {value}); the series' usual slope {slope:g} and intercept "
        f"{intercept:g} were used instead"
    ]


def fix_pixel_representation(
    hu: np.ndarray, frames: tuple[Frame, ...], images: dict[Path, DicomImage]
) -> tuple[np.ndarray, str | None]:
    """Re-read as signed a 16-bit series marked unsigned (PixelRepresentation 0) whose HU only make
    sense signed: stored values >= 32768 that give HU above CT's scale become negative."""
    formats = {images[f.path].pixels for f in frames}
    if any(fmt.signed or fmt.bits_stored != 16 for fmt in formats) or hu.dtype.kind != "f":
        return hu, None
    if float(np.nanmax(hu)) <= _MAX_PLAUSIBLE_HU:
        return hu, None
    fixed = np.empty_like(hu)
    for k, frame in enumerate(frames):
        stored = np.rint((hu[k].astype(np.float64) - frame.intercept) / frame.slope)
        stored[stored >= 32768] -= 65536
        fixed[k] = stored * frame.slope + frame.intercept
    if float(np.nanmax(fixed)) > _MAX_PLAUSIBLE_HU:
        return hu, None  # not a sign mix-up: validate_ct says what is wrong
    note = (
        f"PixelRepresentation says unsigned (e.g. {frames[0].path.name}), but the values reach "
        f"{float(np.nanmax(hu)):.0f} HU, beyond CT's scale; they were read as signed 16-bit"
    )
    if (
        np.array_equal(fixed, np.rint(fixed))
        and fixed.min() >= _INT16_MIN
        and fixed.max() <= _INT16_MAX
    ):
        fixed = fixed.astype(np.int16)
    return fixed, note
