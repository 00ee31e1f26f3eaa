"""A small real file system for full-disk tests: a tmpfs of a few hundred KiB mounted on a
temporary folder (needs root and a kernel that lets it mount; the test is skipped with the reason
elsewhere), unmounted afterwards whatever happens."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(folder, size_kib: int = 512) -> Iterator[Path]:
    """Mount a ``size_kib`` KiB tmpfs on ``folder`` (made if missing) for the block."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("a full-disk test mounts a small tmpfs, which needs root")
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, timeout=30)
        if os.path.ismount(folder):
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(disk: Path, leave_bytes: int = 4096) -> Path:
    """Fill ``disk`` with one file until about ``leave_bytes`` are left free; returns the file."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave_bytes))
    return filler
