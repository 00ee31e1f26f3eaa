"""Weights files in parts: split a large file into pieces of at most ``part_bytes``, join them back.

A GPU machine hands back files of at most 16 MiB, at most 8 at a time and 64 MiB in all, so a
teacher of 67 MB travels as ``teacher.safetensors.part0 .. partN``. A manifest entry records the
whole file's size and SHA-256 and each part's; :func:`join_parts` checks every part, then the
joined bytes, and writes the file atomically, so a missing, short or corrupted part is refused
with one sentence and never becomes a weights file. :func:`plan_batches` groups files into the
batches that one transfer may carry. Plain bytes only: no torch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from napari_lungkd.errors import WeightsError
from napari_lungkd.files import atomic_path

PART_BYTES = 16 * 2**20
"""The largest part (the GPU machine's limit on one returned file)."""
BATCH_FILES = 8
BATCH_BYTES = 64 * 2**20
"""What one transfer from the GPU machine carries at most: files, and bytes in all."""
_CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def split_file(path, out_dir, part_bytes: int = PART_BYTES) -> dict:
    """Write ``path`` as ``out_dir/<name>.part0 ..`` (each at most ``part_bytes``, atomically);
    return its manifest entry ``{"name", "bytes", "sha256", "parts": [{"name", "bytes", "sha256"}]}``."""
    path, out_dir = Path(path), Path(out_dir)
    if part_bytes < 1:
        raise ValueError(f"part_bytes must be positive, got {part_bytes}")
    whole = hashlib.sha256()
    parts, k = [], 0
    with open(path, "rb") as f:
        while True:
            data = f.read(part_bytes)
            if not data and parts:
                break
            whole.update(data)
            name = f"{path.name}.part{k}"
            with atomic_path(out_dir / name) as tmp:
                tmp.write_bytes(data)
            parts.append(
                {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            )
            k += 1
            if len(data) < part_bytes:
                break
    size = sum(p["bytes"] for p in parts)
    return {"name": path.name, "bytes": size, "sha256": whole.hexdigest(), "parts": parts}


def _check_part(folder: Path, entry: dict, part: dict) -> Path:
    path = folder / part["name"]
    what = f"Part {part['name']} of {entry['name']}"
    if not path.is_file():
        raise WeightsError(f"{what} is missing from {folder}; fetch it again.")
    size = path.stat().st_size
    if size != part["bytes"]:
        raise WeightsError(f"{what} has {size} bytes, not {part['bytes']}; fetch it again.")
    if _sha256(path) != part["sha256"]:
        raise WeightsError(
            f"{what} is corrupted (its SHA-256 differs from the manifest); fetch it again."
        )
    return path


def join_parts(entry: dict, folder, dest) -> Path:
    """Join the parts of one manifest ``entry`` found in ``folder`` into ``dest`` (a file path or
    a folder), after checking each part's size and SHA-256 and then the whole file's; atomic."""
    folder, dest = Path(folder), Path(dest)
    if dest.is_dir():
        dest = dest / entry["name"]
    paths = [_check_part(folder, entry, p) for p in entry["parts"]]
    whole = hashlib.sha256()
    with atomic_path(dest) as tmp, open(tmp, "wb") as out:
        for p in paths:
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(_CHUNK), b""):
                    whole.update(chunk)
                    out.write(chunk)
        if whole.hexdigest() != entry["sha256"]:
            raise WeightsError(
                f"The parts of {entry['name']} join into a file whose SHA-256 differs from the "
                "manifest; fetch them again."
            )
    return dest


def read_manifest(path) -> dict:
    """A manifest (JSON with a ``files`` list of :func:`split_file` entries), checked for shape."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Manifest {path} does not exist.")
    try:
        doc = json.loads(path.read_text())
        files = doc["files"]
        if not all({"name", "bytes", "sha256", "parts"} <= set(e) for e in files):
            raise KeyError("an entry lacks name, bytes, sha256 or parts")
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"Manifest {path} is not a weights-parts manifest ({exc}).") from exc
    return doc


def join_manifest(manifest_path, dest_dir, folder=None) -> list[Path]:
    """Join every file of the manifest (parts in ``folder``, default: beside the manifest)."""
    manifest_path = Path(manifest_path)
    folder = Path(folder) if folder is not None else manifest_path.parent
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    return [join_parts(e, folder, dest_dir) for e in read_manifest(manifest_path)["files"]]


def plan_batches(
    sizes: dict[str, int], max_files: int = BATCH_FILES, max_bytes: int = BATCH_BYTES
) -> list[list[str]]:
    """Group the files ``{name: bytes}`` (in their order) into batches of at most ``max_files``
    files and ``max_bytes`` bytes; a batch is closed when the next file does not fit."""
    batches: list[list[str]] = [[]]
    used = 0
    for name, size in sizes.items():
        if size > max_bytes:
            raise ValueError(f"{name} ({size} bytes) is larger than a batch ({max_bytes} bytes)")
        if batches[-1] and (len(batches[-1]) >= max_files or used + size > max_bytes):
            batches.append([])
            used = 0
        batches[-1].append(name)
        used += size
    return batches if batches[0] else []
