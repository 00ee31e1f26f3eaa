"""napari_lungkd.files: the one verified atomic write (issue 17, item 1: a full disk never leaves a
short file under the final name, and what was there before is kept)."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from full_disk import small_disk

from napari_lungkd.errors import ExportError, LungKDError
from napari_lungkd.files import (
    all_or_nothing,
    atomic_path,
    atomic_write_bytes,
    same_bytes,
    write_json,
)

INCOMPLETE = r"could not be written completely \(disk full\?\)"


def test_a_short_write_is_refused_and_the_old_file_kept(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_bytes(b'{"old": true}\n')
    real = Path.write_bytes

    def short(self, data):  # what a writer that ignores ENOSPC leaves: the first part only
        return real(self, data[: len(data) // 2])

    monkeypatch.setattr(Path, "write_bytes", short)
    with pytest.raises(ExportError, match=INCOMPLETE) as info:
        write_json(target, {"new": list(range(100))})
    assert str(target) in str(info.value) and "bytes were written" in str(info.value)
    assert "\n" not in str(info.value)
    monkeypatch.undo()
    assert target.read_bytes() == b'{"old": true}\n'
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind


def test_same_size_but_other_bytes_is_refused(tmp_path):
    with pytest.raises(ExportError, match=INCOMPLETE):
        with atomic_path(tmp_path / "a.csv", verify=same_bytes(b"abcd")) as tmp:
            tmp.write_bytes(b"abce")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_reported_while_writing_is_one_sentence(tmp_path):
    target = tmp_path / "m.csv"
    with pytest.raises(ExportError, match=INCOMPLETE):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"part")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []
    # any other error is not a full disk: it passes through as it was
    with pytest.raises(PermissionError):
        with atomic_path(target):
            raise PermissionError(errno.EACCES, "denied")
    assert list(tmp_path.iterdir()) == []


def test_a_complete_write_passes_the_check(tmp_path):
    write_json(tmp_path / "r.json", {"a": 1})
    atomic_write_bytes(tmp_path / "b.txt", b"")
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}
    assert (tmp_path / "b.txt").read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt", "r.json"]


def test_json_onto_a_really_full_disk(tmp_path):
    with small_disk(tmp_path / "disk", size_kib=512) as disk:
        old = disk / "report.json"
        old.write_text('{"kept": 1}\n')
        big = {"rows": ["x" * 1000] * 1000}  # ~1 MB of JSON on a 512 KiB disk
        with pytest.raises(LungKDError, match=INCOMPLETE):
            write_json(old, big)
        with pytest.raises(LungKDError, match=INCOMPLETE):
            write_json(disk / "new.json", big)
        assert sorted(p.name for p in disk.iterdir()) == ["report.json"]
        assert old.read_text() == '{"kept": 1}\n'


def test_all_or_nothing_puts_a_set_of_files_back(tmp_path):
    a, b, c = tmp_path / "a.nii.gz", tmp_path / "a.json", tmp_path / "a.nrrd"
    a.write_bytes(b"old mask")
    b.write_bytes(b"old sidecar")
    with pytest.raises(ExportError):
        with all_or_nothing([a, b, c]):
            atomic_write_bytes(a, b"new mask")  # replaced
            atomic_write_bytes(c, b"new twin")  # created
            raise ExportError("the sidecar failed")  # b never reached
    assert _files(tmp_path) == {"a.json": b"old sidecar", "a.nii.gz": b"old mask"}
    with all_or_nothing([a, b, c]):
        atomic_write_bytes(a, b"new mask")
        atomic_write_bytes(c, b"new twin")
    assert _files(tmp_path) == {
        "a.json": b"old sidecar",
        "a.nii.gz": b"new mask",
        "a.nrrd": b"new twin",
    }


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_atomic_path_gives_the_usual_mode_even_to_a_file_made_anew(tmp_path):
    """mkstemp makes 0600 and some writers (safetensors) unlink and create the file again: what
    lands at ``path`` has the mode a plain open() would give (0666 less the umask)."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    with atomic_path(tmp_path / "w.safetensors") as tmp:
        tmp.unlink()
        tmp.write_bytes(b"made again")
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
