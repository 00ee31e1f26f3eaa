"""Atomic file writes: everything napari-lungkd writes goes to a temporary file, then is renamed.

So a crash, a cancel or a full disk never leaves a half-written mask, report or weights file, and
what the user had before is never overwritten in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide and not thread-safe


def _suffixes(path: Path) -> str:
    # keep compound suffixes such as .nii.gz so that writers that pick a format by name still work
    return "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix


@contextlib.contextmanager
def atomic_path(path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` with the same suffix; rename it onto ``path`` at exit.

    With ``overwrite=False`` an existing ``path`` raises :class:`FileExistsError` before anything is
    written. If the block raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".tmp{_suffixes(path)}", dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
    try:
        yield tmp_path
        if not overwrite and path.exists():
            raise FileExistsError(f"{path} already exists")
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(path, data: bytes, overwrite: bool = True) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


def _json_default(obj: Any):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=_json_default, allow_nan=False)


def write_json(path, obj: Any, overwrite: bool = True) -> None:
    """Write ``obj`` as indented JSON, atomically; numpy values become plain numbers."""
    atomic_write_bytes(path, (to_json_text(obj) + "\n").encode(), overwrite=overwrite)


# ---- output paths, checked before any long work ------------------------------------------------
def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe_writable(folder: Path) -> str | None:
    """None when a file can be created in ``folder`` (tried for real), else the reason."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "it is not writable"
    try:
        fd, tmp = tempfile.mkstemp(prefix=".lungkd-probe-", dir=folder)
    except OSError as exc:
        return f"no file can be created there ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(tmp)
    return None


def check_output_dir(path, what: str = "--out") -> Path:
    """Refuse (:class:`~napari_lungkd.errors.ExportError`) an output folder that cannot be made
    or written: a path that is a file, or a place where no file can be created (``/proc``, a
    read-only folder). Creates nothing; returns the path. Cheap: call it before any model runs."""
    from napari_lungkd.errors import ExportError

    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ExportError(
            f"{what} {path} is a file, not a folder; choose a folder for the results."
        )
    base = _first_existing(path.absolute())
    if not base.is_dir():
        raise ExportError(f"{what} {path} cannot be made: {base} is a file, not a folder.")
    reason = _probe_writable(base)
    if reason:
        where = "" if base == path.absolute() else f" (in {base})"
        raise ExportError(f"{what} {path} cannot be written{where}: {reason}.")
    return path


def check_output_file(path, what: str = "--json") -> Path:
    """Refuse (:class:`~napari_lungkd.errors.ExportError`) an output file that cannot be written:
    a folder, or a path whose folder cannot be made or written. Creates nothing; returns the path."""
    from napari_lungkd.errors import ExportError

    path = Path(path).expanduser()
    if path.is_dir():
        raise ExportError(f"{what} {path} is a folder; give a file name.")
    try:
        check_output_dir(path.parent, what="folder")
    except ExportError as exc:
        raise ExportError(f"{what} {path}: the {exc}") from None
    return path
