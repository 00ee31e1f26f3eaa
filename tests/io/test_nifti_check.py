"""io/nifti_check.py: a NIfTI file cut short is found (SimpleITK reads it without a word)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import SimpleITK as sitk

from napari_lungkd.io.nifti_check import nifti_shortfall


def _write(path, shape=(6, 30, 40), seed=0):
    arr = np.random.default_rng(seed).integers(0, 200, size=shape).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path), True)
    return path


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_whole_files_pass_and_cut_ones_are_named(tmp_path, suffix):
    whole = _write(tmp_path / f"m{suffix}")
    assert nifti_shortfall(whole) is None
    data = whole.read_bytes()
    for frac in (0.98, 0.5):
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(data[: int(len(data) * frac)])
        reason = nifti_shortfall(cut)
        assert reason and "7,552 bytes its header declares" in reason, reason  # 352 + 7,200
        # what SimpleITK makes of it: no error
        sitk.ReadImage(str(cut))


def test_other_files_are_left_to_their_reader(tmp_path):
    nrrd = tmp_path / "m.nrrd"
    nrrd.write_bytes(b"NRRD0004\n")
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not gzip at all")
    tiny = tmp_path / "tiny.nii"
    tiny.write_bytes(b"\0" * 10)
    assert nifti_shortfall(nrrd) is None
    assert nifti_shortfall(junk) is None
    assert nifti_shortfall(tiny) is None


def test_damaged_compressed_data_are_named_and_a_bomb_is_not_inflated(tmp_path):
    whole = _write(tmp_path / "m.nii.gz")
    raw = gzip.decompress(whole.read_bytes())
    damaged = tmp_path / "damaged.nii.gz"  # a compressible mask: its deflate blocks break
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((6, 300, 400), np.uint8)), str(damaged), True)
    blob = bytearray(damaged.read_bytes())
    blob[len(blob) // 2 : len(blob) // 2 + 64] = b"\xff" * 64
    damaged.write_bytes(bytes(blob))
    assert "damaged" in (nifti_shortfall(damaged) or "")
    # 7 KB of voxels declared, 200 MB of zeros behind them: the check reads no further than needed
    bomb = tmp_path / "bomb.nii.gz"
    with gzip.open(bomb, "wb") as f:
        f.write(raw)
        for _ in range(200):
            f.write(b"\0" * (1 << 20))
    assert nifti_shortfall(bomb) is None
