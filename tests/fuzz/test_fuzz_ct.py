"""Hostile CT inputs (tests/hostile_inputs.py) through load_ct: one sentence naming the file, or a
repair with a warning, or a loud "not CT in HU" that segmenting refuses; never a traceback, never
a silent success, and the input left as it was."""

from __future__ import annotations

import numpy as np
import pytest
from hostile_inputs import CT_CASES, snapshot

from napari_lungkd.errors import CtLoadError, LungKDError, ModelError
from napari_lungkd.inference.prepare import check_ct
from napari_lungkd.io import load_ct


@pytest.mark.parametrize("case", CT_CASES, ids=str)
def test_hostile_ct_is_refused_repaired_or_flagged(tmp_path, case):
    path = case.build(tmp_path)
    before = snapshot(tmp_path)
    if case.expect == "refuse":
        with pytest.raises(LungKDError) as info:
            load_ct(path)
        message = str(info.value)
        assert isinstance(info.value, CtLoadError)
        assert str(path) in message  # the file (or the series folder) is named
        assert case.says in message
        assert "\n" not in message and message.endswith(".")
    else:
        ct = load_ct(path)
        assert np.isfinite(ct.hu).all()
        assert all(np.isfinite(ct.spacing_mm)) and min(ct.spacing_mm) > 0
        assert np.isfinite(ct.origin_mm).all() and np.isfinite(ct.direction).all()
        said = [w for w in ct.warnings if case.says in w]
        assert said, ct.warnings
        if case.expect == "repair":
            assert "not_hu" not in ct.metadata, ct.metadata.get("not_hu")
            assert ct.hu.min() < -500  # the repaired CT is still a CT in HU
        else:
            assert ct.metadata["not_hu"]
            with pytest.raises(ModelError, match="Hounsfield"):
                check_ct(ct)  # what Segmenter.iter_segment does first
    assert snapshot(tmp_path) == before


def test_flipped_pixel_representation_gives_the_true_hu(tmp_path):
    from hostile_inputs import DICOM_CASES, chest

    (case,) = [c for c in DICOM_CASES if c.name == "dicom-pixel-representation-flipped"]
    ct = load_ct(case.build(tmp_path))
    np.testing.assert_array_equal(ct.hu, chest())
    assert ct.hu.dtype == np.int16


def test_repaired_rescale_uses_the_series_slope(tmp_path):
    from hostile_inputs import DICOM_CASES, chest

    (case,) = [c for c in DICOM_CASES if c.name == "dicom-slope-nan-one-slice"]
    ct = load_ct(case.build(tmp_path))
    np.testing.assert_array_equal(ct.hu, chest())


def test_nan_voxels_of_a_float_nifti_become_air_where_they_were(tmp_path):
    from hostile_inputs import _nan_voxels, write_image

    array = _nan_voxels(0.01)
    ct = load_ct(write_image(tmp_path / "ct.nii", array))
    bad = np.isnan(array)
    assert (ct.hu[bad] == -1024).all()  # SimpleITK alone reads them as 0 (soft tissue)
    np.testing.assert_array_equal(ct.hu[~bad], array[~bad])


def test_case_counts_cover_every_class():
    kinds = {c.expect for c in CT_CASES}
    assert kinds == {"refuse", "repair", "not_hu"}
    assert len({c.name for c in CT_CASES}) == len(CT_CASES)


def test_memory_is_estimated_from_the_header_before_reading(tmp_path, monkeypatch):
    from hostile_inputs import chest, write_dicom, write_image

    monkeypatch.setenv("LUNGKD_MAX_VOLUME_GB", "0.00001")  # 10 KiB: a 32 x 32 x 4 CT needs more
    for path in (write_image(tmp_path / "ct.nii.gz", chest()), write_dicom(tmp_path / "dcm")):
        with pytest.raises(CtLoadError, match="LUNGKD_MAX_VOLUME_GB") as info:
            load_ct(path)
        assert str(path) in str(info.value)
