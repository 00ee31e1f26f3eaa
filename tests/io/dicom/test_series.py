"""load_ct on small synthetic DICOM series: order, rescale, padding, spacing, and what goes wrong."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from dicom_factory import expected_hu, make_slice, write_series
from pydicom.uid import generate_uid

from napari_lungkd.errors import CtLoadError
from napari_lungkd.io import load_ct
from napari_lungkd.io.dicom.header import _describe
from napari_lungkd.io.dicom.tags import DatasetHeader, quick_header


def test_order_comes_from_positions_not_names_or_instance_numbers(tmp_path):
    n = 7
    names = [f"{name}.dcm" for name in random.Random(3).sample(range(100, 999), n)]
    series = write_series(tmp_path / "s", n, names=names, instance_numbers=list(range(n, 0, -1)))
    ct = load_ct(tmp_path)
    np.testing.assert_array_equal(ct.hu, series.hu)
    assert ct.hu.dtype == np.int16
    assert list(ct.sop_uids) == series.sop_uids
    np.testing.assert_allclose(ct.z_positions_mm, series.z_mm)
    assert ct.spacing_mm == pytest.approx((2.5, 0.7, 0.8))
    assert ct.origin_mm == pytest.approx((-100.0, -120.0, -50.0))
    np.testing.assert_array_equal(ct.direction, np.eye(3))
    assert ct.series_uid == series.series_uid and ct.patient_id == "SYN-0001"
    assert ct.warnings == ()
    assert ct.metadata["slice_files"] == [str(p) for p in series.files]


def test_nested_folders_are_searched(tmp_path):
    series = write_series(tmp_path / "patient" / "study" / "series", 4)
    (tmp_path / "patient" / "notes.txt").write_text("not an image")
    ct = load_ct(tmp_path / "patient")
    np.testing.assert_array_equal(ct.hu, series.hu)
    assert ct.metadata["series_folder"] == str(tmp_path / "patient" / "study" / "series")
    assert ct.metadata["ignored_files"] == {"not DICOM": 1}


def test_missing_middle_slice_loads_and_warns(tmp_path):
    series = write_series(tmp_path, 8, skip=(4,))
    ct = load_ct(tmp_path)
    assert ct.shape == (7, 6, 7)
    np.testing.assert_array_equal(ct.hu, series.hu)
    assert ct.spacing_mm[0] == pytest.approx(2.5)
    (warning,) = [w for w in ct.warnings if "missing" in w]
    assert "1 missing slice" in warning and "-42.50" in warning and "-37.50" in warning


def test_uneven_spacing_warns(tmp_path):
    write_series(tmp_path, 3, dz=2.5)
    make_slice(
        tmp_path / "extra.dcm",
        hu=expected_hu(3, 6, 7),
        ipp=(-100.0, -120.0, -50.0 + 2 * 2.5 + 3.0),
        series_uid=load_ct(tmp_path).series_uid,
        study_uid=generate_uid(),
    )
    ct = load_ct(tmp_path)
    assert any("uneven slice spacing" in w for w in ct.warnings)
    assert ct.spacing_mm[0] == pytest.approx(2.5)


def test_duplicate_position_keeps_lower_instance_number(tmp_path):
    series = write_series(tmp_path, 5)
    dup_uid = make_slice(
        tmp_path / "dup.dcm",
        hu=expected_hu(2, 6, 7) + 500,  # different content, same place, higher InstanceNumber
        ipp=(-100.0, -120.0, -45.0),
        instance=99,
        series_uid=series.series_uid,
        study_uid=generate_uid(),
    )
    ct = load_ct(tmp_path)
    assert ct.shape[0] == 5
    np.testing.assert_array_equal(ct.hu, series.hu)  # slice 2 is the original, not +500
    assert dup_uid not in ct.sop_uids
    assert any("duplicate" in w and "dup.dcm" in w for w in ct.warnings)


def test_gantry_tilt_is_reported(tmp_path):
    write_series(tmp_path, 5, tilt_mm_per_slice=0.5)  # y shifts 0.5 mm per 2.5 mm step: 11.3 deg
    ct = load_ct(tmp_path)
    (warning,) = [w for w in ct.warnings if "gantry tilt" in w]
    assert "11.31 degrees" in warning
    assert ct.metadata["gantry_tilt_deg"] == pytest.approx(11.31, abs=0.01)


def test_padding_value_becomes_air_and_metadata_says_so(tmp_path):
    pad = np.zeros((6, 7), dtype=bool)
    pad[0, :3] = True
    write_series(tmp_path, 3, padding=-2000, pad_mask=pad)
    ct = load_ct(tmp_path)
    assert (ct.hu[:, 0, :3] == -1024).all()
    np.testing.assert_array_equal(
        ct.hu[:, 1:], np.stack([expected_hu(k, 6, 7) for k in range(3)])[:, 1:]
    )
    assert ct.metadata["pixel_padding_value"] == -2000
    assert ct.metadata["padded_voxels"] == 9
    assert ct.metadata["padding_hu"] == -1024


def test_unsigned_pixels_and_fractional_rescale_give_float32(tmp_path):
    write_series(tmp_path / "u", 3, signed=False, intercept=-1024.0)
    ct = load_ct(tmp_path / "u")
    assert ct.hu.dtype == np.int16
    np.testing.assert_array_equal(ct.hu, np.stack([expected_hu(k, 6, 7) for k in range(3)]))
    write_series(tmp_path / "f", 3, slope=0.5, intercept=-1000.5)
    ct = load_ct(tmp_path / "f")
    assert ct.hu.dtype == np.float32
    np.testing.assert_allclose(ct.hu, np.stack([expected_hu(k, 6, 7) for k in range(3)]), atol=0.5)


def test_int16_overflow_falls_back_to_float32(tmp_path):
    # an integral rescale whose HU do not fit int16: stored 40000.. (unsigned) -> HU 40000..
    series_uid, study_uid = generate_uid(), generate_uid()
    hu = np.stack([expected_hu(k, 6, 7).astype(np.int32) + 40000 for k in range(2)])
    for k in range(2):
        make_slice(
            tmp_path / f"{k}.dcm",
            hu=hu[k],
            ipp=(-100.0, -120.0, -50.0 + 2.5 * k),
            series_uid=series_uid,
            study_uid=study_uid,
            intercept=0.0,
            signed=False,
        )
    ct = load_ct(tmp_path)
    assert ct.hu.dtype == np.float32
    np.testing.assert_array_equal(ct.hu, hu.astype(np.float32))


def test_non_integral_intercept_falls_back_to_float32(tmp_path):
    write_series(tmp_path, 3, intercept=-1024.5)  # HU = stored - 1024.5: never an integer
    ct = load_ct(tmp_path)
    assert ct.hu.dtype == np.float32
    stored = np.round(np.stack([expected_hu(k, 6, 7) for k in range(3)]) + 1024.5)
    np.testing.assert_array_equal(ct.hu, (stored - 1024.5).astype(np.float32))
    assert np.all(ct.hu % 1 == 0.5)


def test_compressed_series_decodes_through_pydicom_with_threads(tmp_path):
    series = write_series(tmp_path, 9, compress="1.2.840.10008.1.2.5")  # RLE Lossless
    ct = load_ct(tmp_path)
    np.testing.assert_array_equal(ct.hu, series.hu)
    assert ct.metadata["transfer_syntax"] == "1.2.840.10008.1.2.5"


def test_most_slices_series_is_chosen_and_others_listed(tmp_path):
    big = write_series(tmp_path / "a", 5)
    small = write_series(tmp_path / "b", 3)
    ct = load_ct(tmp_path)
    assert ct.series_uid == big.series_uid
    assert ct.metadata["other_series"][0]["series_uid"] == small.series_uid
    assert ct.metadata["other_series"][0]["n_slices"] == 3
    assert any(small.series_uid in w and "series_uid" in w for w in ct.warnings)
    chosen = load_ct(tmp_path, series_uid=small.series_uid)
    np.testing.assert_array_equal(chosen.hu, small.hu)
    with pytest.raises(CtLoadError, match="no CT series 1.2.3"):
        load_ct(tmp_path, series_uid="1.2.3")


def test_one_broken_file_among_good_ones_is_skipped_by_name(tmp_path):
    series = write_series(tmp_path, 5)
    data = series.files[2].read_bytes()
    series.files[2].write_bytes(data[: len(data) - 40])  # truncated pixel data
    (tmp_path / "garbage.dcm").write_bytes(b"\x00" * 50)
    ct = load_ct(tmp_path)
    assert ct.shape[0] == 4
    assert series.sop_uids[2] not in ct.sop_uids
    (warning,) = [w for w in ct.warnings if w.startswith("skipped")]
    assert series.files[2].name in warning and "truncated" in warning
    assert "garbage.dcm" in warning
    assert any("missing slice" in w for w in ct.warnings)


def test_single_file_and_single_slice_geometry(tmp_path):
    series = write_series(tmp_path / "s", 3)
    alone = tmp_path / "alone"  # a truly single-slice CT: the only file of its series and folder
    alone.mkdir()
    (alone / series.files[1].name).write_bytes(series.files[1].read_bytes())
    ct = load_ct(alone / series.files[1].name)
    assert ct.shape == (1, 6, 7)
    assert not any("one slice of a series" in w for w in ct.warnings)
    np.testing.assert_array_equal(ct.hu[0], series.hu[1])
    assert ct.spacing_mm == pytest.approx((2.5, 0.7, 0.8))  # SliceThickness for one slice
    assert ct.origin_mm == pytest.approx((-100.0, -120.0, -47.5))
    assert ct.sop_uids == (series.sop_uids[1],)


def test_one_file_of_a_series_loads_the_whole_series_and_says_so(tmp_path):
    series = write_series(tmp_path / "series", 4)
    other = write_series(tmp_path / "series", 2, names=["x1.dcm", "x2.dcm"])  # same folder
    ct = load_ct(series.files[2])
    np.testing.assert_array_equal(ct.hu, series.hu)
    assert list(ct.sop_uids) == series.sop_uids and ct.series_uid == series.series_uid
    note = ct.warnings[0]
    assert series.files[2].name in note and "whole series (4 slices" in note
    assert other.series_uid not in ct.sop_uids
    assert load_ct(other.files[0]).shape[0] == 2  # the file's own series, not the larger one


def test_flipped_row_direction_is_reoriented_to_identity(tmp_path):
    # rows run towards -x, so the slice normal is -z: both x and z come back flipped
    series = write_series(tmp_path, 3, iop=(-1.0, 0.0, 0.0, 0.0, 1.0, 0.0))
    ct = load_ct(tmp_path)
    np.testing.assert_array_equal(ct.direction, np.eye(3))
    np.testing.assert_array_equal(ct.hu, series.hu[:, :, ::-1])
    assert ct.origin_mm == pytest.approx((-100.0 - 6 * 0.8, -120.0, -50.0))
    np.testing.assert_allclose(ct.z_positions_mm, [-50.0, -47.5, -45.0])
    assert list(ct.sop_uids) == series.sop_uids
    # the stored first column (x = -100 mm) is now the last one
    assert ct.index_to_lps(np.array([0, 0, 6])) == pytest.approx((-100.0, -120.0, -50.0))


def test_bad_folders_raise_one_clear_sentence(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CtLoadError, match="is empty"):
        load_ct(empty)
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("hello")
    (texts / "b.xml").write_text("<a/>")
    with pytest.raises(CtLoadError, match="holds no DICOM files"):
        load_ct(texts)
    with pytest.raises(CtLoadError, match="does not exist"):
        load_ct(tmp_path / "nowhere")
    mr = tmp_path / "mr"
    write_series(mr, 3, modality="MR")
    with pytest.raises(CtLoadError, match=r"no CT image series.*3 file\(s\) of modality MR"):
        load_ct(mr)


def test_truncated_jpeg2000_ct_is_refused_by_name(tmp_path):
    pytest.importorskip("openjpeg")
    path = tmp_path / "j2k.dcm"
    make_slice(
        path,
        hu=expected_hu(0, 64, 64),
        series_uid=generate_uid(),
        study_uid=generate_uid(),
        compress="1.2.840.10008.1.2.4.90",
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 60])
    with pytest.raises(CtLoadError) as info:
        load_ct(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "syntax", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"]
)  # implicit LE, explicit LE, explicit big endian
def test_transfer_syntaxes_and_both_header_readers_agree(tmp_path, syntax):
    series = write_series(tmp_path, 4, transfer_syntax=syntax, padding=-2000)
    ct = load_ct(tmp_path)
    np.testing.assert_array_equal(ct.hu, series.hu)
    from napari_lungkd.io.dicom.header import read_dataset

    for path in series.files:
        quick = quick_header(path)
        if syntax == "1.2.840.10008.1.2.2":
            assert quick is None  # big endian data sets are left to pydicom
            continue
        fast = _describe(path, quick)
        slow = _describe(path, DatasetHeader(read_dataset(path)))
        assert fast.frames == slow.frames and fast.series_uid == slow.series_uid
        # pydicom reads tiny pixel data at once (not deferred), so only the quick header has an offset
        assert fast.pixels == dataclasses.replace(slow.pixels, raw_offset=fast.pixels.raw_offset)
        assert fast.pixels.raw_offset is not None and fast.pixels.padding == (-2000, -2000)


def test_localizer_and_odd_sized_image_in_the_series_are_left_out(tmp_path):
    series = write_series(tmp_path, 4)
    make_slice(
        tmp_path / "scout.dcm",
        hu=expected_hu(0, 6, 7),
        iop=(0, 1, 0, 0, 0, -1),
        series_uid=series.series_uid,
        study_uid=generate_uid(),
    )
    make_slice(
        tmp_path / "big.dcm",
        hu=expected_hu(0, 9, 9),
        ipp=(-100, -120, 100.0),
        series_uid=series.series_uid,
        study_uid=generate_uid(),
    )
    ct = load_ct(tmp_path)
    np.testing.assert_array_equal(ct.hu, series.hu)
    assert any("orientation differs" in w and "scout.dcm" in w for w in ct.warnings)
    assert any("image size differs" in w and "big.dcm" in w for w in ct.warnings)
