"""Masks written in the CT's geometry: re-read by SimpleITK they overlay the CT voxel for voxel."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from napari_lungkd.ct import CtVolume
from napari_lungkd.errors import ExportError
from napari_lungkd.io import load_ct
from napari_lungkd.io.masks import ct_image, read_mask, write_mask


def _ct(shape=(4, 5, 6)) -> CtVolume:
    return CtVolume(
        hu=np.zeros(shape, np.int16),
        spacing_mm=(2.5, 0.703125, 0.8),
        origin_mm=(-166.0, -171.699997, -340.0),
    )


def _mask(shape, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 3, size=shape).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd"])
def test_written_mask_has_ct_geometry_and_overlays_voxel_for_voxel(tmp_path, suffix):
    ct = _ct()
    mask = _mask(ct.shape)
    path = write_mask(tmp_path / f"mask{suffix}", mask, ct)
    image = sitk.ReadImage(str(path))
    assert image.GetPixelID() == sitk.sitkUInt8
    assert image.GetSpacing() == pytest.approx(ct.spacing_mm[::-1])
    assert image.GetOrigin() == pytest.approx(ct.origin_mm, abs=1e-4)
    assert image.GetDirection() == pytest.approx(tuple(np.eye(3).ravel()))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), mask)
    # a voxel's physical point is the same in the mask file and in the CT
    zyx = np.array([3, 1, 4])
    point = image.TransformIndexToPhysicalPoint([int(v) for v in zyx[::-1]])
    assert point == pytest.approx(tuple(ct.index_to_lps(zyx)), abs=1e-4)
    np.testing.assert_array_equal(read_mask(path, ct), mask)


def test_existing_file_is_refused_unless_overwrite(tmp_path):
    ct = _ct()
    path = write_mask(tmp_path / "m.nii.gz", _mask(ct.shape, 1), ct)
    before = path.read_bytes()
    with pytest.raises(ExportError, match="already exists"):
        write_mask(path, _mask(ct.shape, 2), ct)
    assert path.read_bytes() == before
    write_mask(path, _mask(ct.shape, 2), ct, overwrite=True)
    np.testing.assert_array_equal(read_mask(path, ct), _mask(ct.shape, 2))
    assert [p.name for p in tmp_path.iterdir()] == ["m.nii.gz"]  # no temporary files left


def test_bad_masks_are_refused(tmp_path):
    ct = _ct()
    with pytest.raises(ExportError, match="shape"):
        write_mask(tmp_path / "a.nii.gz", np.zeros((1, 2, 3), np.uint8), ct)
    with pytest.raises(ExportError, match="0-255"):
        write_mask(tmp_path / "a.nii.gz", np.full(ct.shape, 300), ct)
    with pytest.raises(ExportError, match="unsupported extension"):
        write_mask(tmp_path / "a.png", np.zeros(ct.shape, np.uint8), ct)
    path = write_mask(tmp_path / "b.nii.gz", np.ones(ct.shape, bool), ct)
    assert read_mask(path, ct).dtype == np.uint8
    assert not (tmp_path / "a.nii.gz").exists()


def test_read_mask_refuses_another_grid_and_undoes_axis_flips(tmp_path):
    ct = _ct()
    mask = _mask(ct.shape)
    other = CtVolume(hu=ct.hu, spacing_mm=(2.0, 0.703125, 0.8), origin_mm=ct.origin_mm)
    path = write_mask(tmp_path / "other.nrrd", mask, other)
    with pytest.raises(ExportError, match=r"other\.nrrd is not on this CT's grid \(spacing"):
        read_mask(path, ct)
    # the same mask stored by a RAS-minded tool: x and y flipped, origin at the other corner
    image = ct_image(mask[:, ::-1, ::-1], ct)
    image.SetDirection([-1, 0, 0, 0, -1, 0, 0, 0, 1])
    far = ct.index_to_lps(np.array([0, ct.shape[1] - 1, ct.shape[2] - 1]))
    image.SetOrigin([float(v) for v in far])
    sitk.WriteImage(image, str(tmp_path / "ras.nii.gz"))
    np.testing.assert_array_equal(read_mask(tmp_path / "ras.nii.gz", ct), mask)
    with pytest.raises(ExportError, match="does not exist"):
        read_mask(tmp_path / "missing.nii.gz", ct)


@pytest.mark.realdata
def test_mask_on_lidc0001_overlays_the_series(tmp_path, lidc0001):
    ct = load_ct(lidc0001)
    mask = np.zeros(ct.shape, np.uint8)
    mask[60:70, 300:320, 100:130] = 1
    path = write_mask(tmp_path / "lidc0001_mask.nii.gz", mask, ct)
    image = sitk.ReadImage(str(path))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(lidc0001)))
    reference = reader.Execute()  # SimpleITK's own reading of the DICOM series
    assert image.GetSize() == reference.GetSize()
    assert image.GetSpacing() == pytest.approx(reference.GetSpacing(), abs=1e-5)
    assert image.GetOrigin() == pytest.approx(reference.GetOrigin(), abs=1e-3)
    assert image.GetDirection() == pytest.approx(reference.GetDirection(), abs=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(reference), ct.hu)
    np.testing.assert_array_equal(read_mask(path, ct), mask)
