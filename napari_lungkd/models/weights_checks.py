"""Checks on a weights file beyond its tensor hash: header hash, pins, zip bombs, tensor values.

See :mod:`napari_lungkd.models.weights_file` for the format; these are the refusals it makes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from napari_lungkd.errors import WeightsError

BUNDLED_DIR = Path(__file__).resolve().parent / "weights_data"
MAX_CHECKPOINT_BYTES = 8 * 2**30


def header_sha256(header: dict) -> str:
    """A hash of a weights header without its own ``header_sha256`` field (canonical JSON)."""
    body = {k: v for k, v in header.items() if k != "header_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def pinned_sha256s(registry=None) -> set[str]:
    """The file SHA-256s that are pinned: every entry of the bundled ``registry.json`` (or
    ``registry``); empty when there is none."""
    path = Path(registry) if registry is not None else BUNDLED_DIR / "registry.json"
    try:
        reg = json.loads(path.read_text())
    except (OSError, ValueError):
        return set()
    if not isinstance(reg, dict):
        return set()
    return {
        str(e["sha256"]).lower() for e in reg.values() if isinstance(e, dict) and e.get("sha256")
    }


def check_header(path: Path, header: dict, pinned: bool, newest: int) -> int:
    """The header's format version, after checking its own hash (format 2) or its pin (format 1)."""
    version = header.get("format", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise WeightsError(f"Weights file {path} has an unknown format {version!r}.")
    if version > newest:
        raise WeightsError(
            f"Weights file {path} is in format {version}, newer than this napari-lungkd reads "
            f"({newest}); update napari-lungkd."
        )
    if version >= 2:
        want = header.get("header_sha256")
        if not want:
            raise WeightsError(
                f"Weights file {path} has no header_sha256, so its header cannot be verified."
            )
        try:
            got = header_sha256(header)
        except ValueError:
            raise WeightsError(
                f"Weights file {path} has NaN or infinite numbers in its header; it was not loaded."
            ) from None
        if got != want:
            raise WeightsError(
                f"Weights file {path} fails its header check (its spec or metadata, e.g. the "
                "threshold, changed after it was written); it was tampered with or corrupted."
            )
    elif not pinned:
        raise WeightsError(
            f"Weights file {path} is in the old format 1, whose header (spec, threshold) no hash "
            "covers, and it is not one of the pinned files; export it again with "
            "src_training's export step to get a verifiable format-2 file."
        )
    return version


def check_scales(state: dict, path: Path) -> None:
    """int8 scales must be finite, positive and shaped ``(C_out, 1, ...)`` like their tensor."""
    from napari_lungkd.models.quant import INT8_SUFFIX, SCALE_SUFFIX

    for name, q in state.items():
        if not name.endswith(INT8_SUFFIX):
            continue
        base = name[: -len(INT8_SUFFIX)]
        scale = state.get(base + SCALE_SUFFIX)
        if scale is None:
            continue  # _to_float names it
        want = (q.shape[0],) + (1,) * (q.ndim - 1)
        if tuple(scale.shape) != want:
            raise WeightsError(
                f"Weights file {path} has a scale for {base} of shape {tuple(scale.shape)}, "
                f"not {want}."
            )
        if not bool((scale.float().isfinite() & (scale.float() > 0)).all()):
            raise WeightsError(
                f"Weights file {path} has a scale for {base} that is not finite and positive."
            )


def check_finite(state: dict, path: Path) -> None:
    for name, t in state.items():
        if t.is_floating_point() and t.numel() and not bool(t.isfinite().all()):
            raise WeightsError(f"Weights file {path} has NaN or infinite values in {name}.")


def check_zip(path: Path) -> None:
    """Refuse a zip (PyTorch checkpoint) whose entries declare far more than the file holds."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as zf:
            declared = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WeightsError(f"Checkpoint {path} is a broken zip file ({exc}).") from None
    size = path.stat().st_size
    if declared > MAX_CHECKPOINT_BYTES or declared > 4 * size + 2**24:
        raise WeightsError(
            f"Checkpoint {path} declares {declared / 2**20:.0f} MiB of contents in a "
            f"{size / 2**20:.1f} MiB file (PyTorch stores tensors uncompressed): a zip bomb or a "
            "broken file; it was not loaded."
        )
