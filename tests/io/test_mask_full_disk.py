"""Masks on a full disk (issue 17, item 1): SimpleITK does not report ENOSPC, so every mask file is
read back before it is renamed into place. A short write raises one sentence naming the file,
leaves what was there before as it was and leaves no temporary file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from full_disk import small_disk

from napari_lungkd.ct import CtVolume
from napari_lungkd.errors import ExportError
from napari_lungkd.io.masks import read_mask, save_mask, write_mask

INCOMPLETE = r"could not be written completely \(disk full\?\)"


def _ct(shape=(8, 40, 48)) -> CtVolume:
    return CtVolume(hu=np.zeros(shape, np.int16), spacing_mm=(2.5, 0.8, 0.8), origin_mm=(0, 0, 0))


def _labels(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 250, size=shape).astype(np.uint8)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _truncating_writer(monkeypatch, keep=0.6):
    """SimpleITK's WriteImage as it behaves on a full disk: no error, the file cut short."""
    real = sitk.WriteImage

    def short(image, path, *args, **kwargs):
        real(image, path, *args, **kwargs)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(int(size * keep))

    monkeypatch.setattr(sitk, "WriteImage", short)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd"])
def test_a_short_mask_file_is_refused_and_the_old_one_kept(tmp_path, monkeypatch, suffix):
    ct = _ct()
    path = tmp_path / f"student_mask{suffix}"
    save_mask(path, _labels(ct.shape, 1), ct, labels=True)
    before = _snapshot(tmp_path)
    _truncating_writer(monkeypatch)
    with pytest.raises(ExportError, match=INCOMPLETE) as info:
        save_mask(path, _labels(ct.shape, 2), ct, labels=True, overwrite=True)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert _snapshot(tmp_path) == before  # the old mask and sidecar as they were, no temp file
    monkeypatch.undo()
    np.testing.assert_array_equal(read_mask(path, ct), _labels(ct.shape, 1))


def test_a_short_new_mask_leaves_nothing(tmp_path, monkeypatch):
    ct = _ct()
    _truncating_writer(monkeypatch, keep=0.9)
    with pytest.raises(ExportError, match=INCOMPLETE):
        save_mask(tmp_path / "m.nii.gz", _labels(ct.shape), ct, labels=True, nrrd=True)
    with pytest.raises(ExportError, match=INCOMPLETE):
        write_mask(tmp_path / "w.nii", _labels(ct.shape), ct)
    assert list(tmp_path.iterdir()) == []


def test_a_mask_too_big_for_a_real_disk(tmp_path, capfd):
    ct = _ct((48, 128, 128))  # 768 KiB of noise labels: more than the disk, compressed or not
    mask = _labels(ct.shape)
    with small_disk(tmp_path / "disk", size_kib=512) as disk:
        for name in ("m.nii.gz", "m.nii", "m.nrrd"):
            with pytest.raises(ExportError, match=INCOMPLETE) as info:
                save_mask(disk / name, mask, ct, labels=True)
            assert str(disk / name) in str(info.value)
            assert list(disk.iterdir()) == [], name
        # a small mask still fits and reads back
        small = _ct((2, 8, 8))
        save_mask(disk / "s.nii.gz", _labels(small.shape), small, labels=True)
        np.testing.assert_array_equal(read_mask(disk / "s.nii.gz", small), _labels(small.shape))
    # the NIfTI library's own "wrote only N of M bytes" is not printed beside our sentence
    err = capfd.readouterr().err
    assert "wrote only" not in err and "ERROR" not in err, err


def test_a_failure_after_the_first_file_puts_every_file_back(tmp_path, monkeypatch):
    # overwrite: the .nii.gz is replaced, then its .nrrd twin comes out short; the set is restored
    ct = _ct()
    path = tmp_path / "student_mask.nii.gz"
    save_mask(path, _labels(ct.shape, 1), ct, labels=True, nrrd=True)
    before = _snapshot(tmp_path)
    real = sitk.WriteImage

    def short_nrrd(image, name, *args, **kwargs):
        real(image, name, *args, **kwargs)
        if str(name).endswith(".nrrd"):
            with open(name, "r+b") as f:
                f.truncate(100)

    monkeypatch.setattr(sitk, "WriteImage", short_nrrd)
    with pytest.raises(ExportError, match=INCOMPLETE):
        save_mask(path, _labels(ct.shape, 2), ct, labels=True, nrrd=True, overwrite=True)
    assert _snapshot(tmp_path) == before
    # a new set whose sidecar fails leaves nothing
    with pytest.raises(ExportError, match=INCOMPLETE):
        save_mask(tmp_path / "b.nii.gz", _labels(ct.shape, 2), ct, labels=True, nrrd=True)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_reading_a_mask_that_was_cut_short_is_refused(tmp_path, suffix):
    # a short file left by an earlier version or another tool: SimpleITK reads it without a word
    ct = _ct()
    path = write_mask(tmp_path / f"m{suffix}", _labels(ct.shape), ct)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.9)])
    with pytest.raises(ExportError, match="is incomplete") as info:
        read_mask(path, ct)
    assert str(path) in str(info.value) and "full disk" in str(info.value)
