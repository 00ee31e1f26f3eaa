"""load_ct on NIfTI / MetaImage / NRRD: values, LPS geometry, reorientation, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from napari_lungkd.errors import CtLoadError
from napari_lungkd.io import load_ct
from napari_lungkd.io.orientation import axis_change, to_identity


def _image(array, spacing_xyz=(0.7, 0.8, 2.5), origin=(-100.0, -120.0, -50.0), direction=None):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(np.asarray(direction, dtype=float).ravel().tolist())
    return image


def _same_voxels_in_patient_space(ct, image) -> None:
    """Every voxel of ``image`` sits, in LPS, where ``ct`` has the same value."""
    array = sitk.GetArrayFromImage(image)
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    zyx = np.stack(np.meshgrid(*[np.arange(s) for s in array.shape], indexing="ij"), -1)
    lps = np.asarray(image.GetOrigin()) + (zyx[..., ::-1] * np.asarray(image.GetSpacing())) @ d.T
    index = np.rint(ct.lps_to_index(lps)).astype(int)
    np.testing.assert_array_equal(ct.hu[index[..., 0], index[..., 1], index[..., 2]], array)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mhd", ".mha", ".nrrd"])
def test_formats_keep_values_and_lps_geometry(tmp_path, suffix):
    array = (np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) * 7 - 1000).astype(np.int16)
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(_image(array), str(path))
    ct = load_ct(path)
    np.testing.assert_array_equal(ct.hu, array)
    assert ct.hu.dtype == np.int16
    assert ct.spacing_mm == pytest.approx((2.5, 0.8, 0.7))
    assert ct.origin_mm == pytest.approx((-100.0, -120.0, -50.0), abs=1e-4)
    np.testing.assert_array_equal(ct.direction, np.eye(3))
    assert ct.source == str(path) and ct.warnings == ()


@pytest.mark.parametrize(
    "direction",
    [
        np.diag([-1.0, -1.0, 1.0]),  # RAS-style storage (what NIfTI writers often give)
        np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]),  # x/y swapped, z reversed
        np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),  # a sagittal stack
    ],
)
def test_axis_permutations_are_reoriented_to_identity(tmp_path, direction):
    rng = np.random.default_rng(0)
    array = rng.integers(-1000, 1000, size=(3, 4, 5)).astype(np.int16)
    image = _image(array, direction=direction)
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    ct = load_ct(tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(ct.direction, np.eye(3))
    assert ct.hu.flags.c_contiguous
    _same_voxels_in_patient_space(ct, sitk.ReadImage(str(tmp_path / "ct.nii.gz")))


def test_oblique_direction_is_kept_with_a_warning(tmp_path):
    angle = np.radians(20)
    rot = np.array(
        [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]]
    )
    array = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    sitk.WriteImage(_image(array, direction=rot), str(tmp_path / "ct.mha"))
    ct = load_ct(tmp_path / "ct.mha")
    np.testing.assert_allclose(ct.direction, rot, atol=1e-6)
    np.testing.assert_array_equal(ct.hu, array)
    assert any("oblique" in w for w in ct.warnings)


def test_float_values_become_int16_only_when_integral(tmp_path):
    sitk.WriteImage(_image(np.full((2, 3, 4), -600.0, np.float32)), str(tmp_path / "a.nrrd"))
    assert load_ct(tmp_path / "a.nrrd").hu.dtype == np.int16
    sitk.WriteImage(_image(np.full((2, 3, 4), -600.25, np.float32)), str(tmp_path / "b.nrrd"))
    ct = load_ct(tmp_path / "b.nrrd")
    assert ct.hu.dtype == np.float32 and ct.hu[0, 0, 0] == pytest.approx(-600.25)


def test_luna16_file_name_gives_the_series_uid(tmp_path):
    uid = "1.3.6.1.4.1.14519.5.2.1.6279.6001.105756658031515062000744821260"
    sitk.WriteImage(_image(np.zeros((2, 3, 4), np.int16)), str(tmp_path / f"{uid}.mhd"))
    assert load_ct(tmp_path / f"{uid}.mhd").series_uid == uid


def test_2d_image_becomes_one_slice(tmp_path):
    image = sitk.GetImageFromArray(np.arange(12, dtype=np.int16).reshape(3, 4))
    sitk.WriteImage(image, str(tmp_path / "slice.nrrd"))
    assert load_ct(tmp_path / "slice.nrrd").shape == (1, 3, 4)


def test_broken_and_colour_files_are_refused_by_name(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"this is not a nifti file at all" * 10)
    with pytest.raises(CtLoadError, match=r"broken\.nii\.gz cannot be read as NIfTI"):
        load_ct(bad)
    rgb = sitk.GetImageFromArray(np.zeros((2, 3, 4, 3), np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.mha"))
    with pytest.raises(CtLoadError, match=r"rgb\.mha has 3 values per voxel"):
        load_ct(tmp_path / "rgb.mha")
    with pytest.raises(CtLoadError, match="is not DICOM, so it has no series"):
        load_ct(tmp_path / "rgb.mha", series_uid="1.2.3")


def test_to_identity_leaves_identity_alone_and_oblique_untouched():
    array = np.arange(24).reshape(2, 3, 4)
    out, spacing, origin, direction, change = to_identity(array, (1, 2, 3), (0, 0, 0), np.eye(3))
    assert out is array and change.is_identity
    assert axis_change(np.array([[0.6, 0.8, 0], [-0.8, 0.6, 0], [0, 0, 1]])) is None


def test_a_nifti_ct_cut_short_is_refused_not_read_with_missing_slices(tmp_path):
    """SimpleITK reads a truncated .nii without an error (zeros for the missing voxels): a copy
    interrupted or a full disk. load_ct says the file is cut short instead."""
    hu = np.full((6, 32, 32), -800, np.int16)
    whole = tmp_path / "ct.nii"
    sitk.WriteImage(_image(hu), str(whole))
    assert load_ct(whole).shape == (6, 32, 32)
    cut = tmp_path / "cut.nii"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size - 3 * 32 * 32 * 2])
    with pytest.raises(CtLoadError, match=r"cut\.nii is cut short .*of the"):
        load_ct(cut)
