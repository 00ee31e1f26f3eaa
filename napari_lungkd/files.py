"""Atomic file writes: everything napari-lungkd writes goes to a temporary file, then is renamed.

So a crash, a cancel or a full disk never leaves a half-written mask, report or weights file, and
what the user had before is never overwritten in place. What was written is checked before the
rename (:func:`atomic_path`'s ``verify``: the bytes read back, an image re-read), because some
writers (SimpleITK) do not report a full disk and would leave a short file under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
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


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}

Verify = Callable[[Path], "str | None"]
"""Checks a written temporary file: None when it holds what was meant, else what is wrong."""


def incomplete_write(path, reason: str):
    """The one sentence for a file that a full disk (or a failing writer) cut short."""
    from napari_lungkd.errors import ExportError

    return ExportError(
        f"{path} could not be written completely (disk full?): {reason}; "
        "nothing was written under that name."
    )


def _check_written(path: Path, tmp: Path, verify: Verify | None) -> None:
    """Raise :func:`incomplete_write` unless the temporary file ``tmp`` is there and ``verify``
    finds it complete (an ``OSError`` while checking counts as incomplete)."""
    try:
        if not tmp.is_file():
            reason = "the temporary file vanished"
        else:
            reason = verify(tmp) if verify is not None else None
    except OSError as exc:
        reason = f"it cannot be read back ({exc.strerror or exc})"
    if reason:
        raise incomplete_write(path, reason)


@contextlib.contextmanager
def atomic_path(path, overwrite: bool = True, verify: Verify | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` with the same suffix; rename it onto ``path`` at exit.

    With ``overwrite=False`` an existing ``path`` raises :class:`FileExistsError` before anything is
    written. If the block raises, the temporary file is removed and ``path`` is untouched.
    Before the rename, ``verify(tmp)`` (when given) checks what was written: a reason it gives,
    or a full disk reported while writing, raises one
    :class:`~napari_lungkd.errors.ExportError` sentence (:func:`incomplete_write`) and leaves
    ``path`` as it was.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".tmp{_suffixes(path)}", dir=path.parent
        )
    except OSError as exc:  # no room for even an empty file (no free inodes)
        if exc.errno in _DISK_FULL:
            raise incomplete_write(path, exc.strerror or str(exc)) from None
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise incomplete_write(path, exc.strerror or str(exc)) from None
            raise
        _check_written(path, tmp_path, verify)
        # mkstemp makes 0600, and a writer may make the file anew (safetensors does): give what
        # was written the usual mode, as a plain open() would
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        if not overwrite and path.exists():
            raise FileExistsError(f"{path} already exists")
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def all_or_nothing(paths) -> Iterator[None]:
    """For files written together (a mask, its twins, its sidecar): if the block raises, each of
    ``paths`` is put back as it was: a file that existed is restored (kept aside meanwhile as a
    hard link, so nothing is copied), one that did not is removed. Where a file system has no
    hard links, an existing file that was already replaced stays replaced."""
    import uuid

    paths = [Path(p) for p in paths]
    kept: dict[Path, Path] = {}
    existed = {p for p in paths if p.exists()}
    for p in existed:
        aside = p.with_name(f".{p.name}.{uuid.uuid4().hex[:12]}.keep")
        try:
            os.link(p, aside)
        except OSError:
            continue
        kept[p] = aside
    try:
        yield
    except BaseException:
        for p in paths:
            if p in kept:
                if not (p.exists() and os.path.samefile(kept[p], p)):  # not replaced: leave it
                    os.replace(kept[p], p)
            elif p not in existed:
                p.unlink(missing_ok=True)
        raise
    finally:
        for aside in kept.values():
            aside.unlink(missing_ok=True)


def same_bytes(data: bytes) -> Verify:
    """A ``verify`` for :func:`atomic_path`: the file holds exactly ``data`` (size, then SHA-256)."""
    want = hashlib.sha256(data).digest()

    def verify(tmp: Path) -> str | None:
        size = tmp.stat().st_size
        if size != len(data):
            return f"{size} of {len(data)} bytes were written"
        if hashlib.sha256(tmp.read_bytes()).digest() != want:
            return "the bytes read back differ from those written"
        return None

    return verify


def atomic_write_bytes(path, data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically, read back and compared before the rename."""
    data = bytes(data)
    with atomic_path(path, overwrite=overwrite, verify=same_bytes(data)) as tmp:
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
