"""load_ct on the real LIDC-IDRI-0001 series, against pylidc's Scan.to_volume() and a pydicom oracle."""

from __future__ import annotations

import importlib.resources
import sys
import types
import warnings

import numpy as np
import pydicom
import pytest

from napari_lungkd.io import load_ct


@pytest.fixture(scope="module")
def ct(lidc0001):
    return load_ct(lidc0001.parents[1])  # the patient folder: the series is found recursively


@pytest.fixture(scope="module")
def headers(lidc0001):
    return {
        p.name: pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(lidc0001.glob("*.dcm"))
    }


@pytest.mark.realdata
def test_shape_order_spacing_and_identity(ct, headers, lidc0001):
    assert ct.shape == (133, 512, 512)
    assert ct.hu.dtype == np.int16
    assert (np.diff(ct.z_positions_mm) > 0).all()
    assert ct.spacing_mm == pytest.approx((2.5, 0.703125, 0.703125))
    assert ct.origin_mm == pytest.approx((-166.0, -171.699997, -340.0))
    np.testing.assert_array_equal(ct.direction, np.eye(3))
    assert ct.patient_id == "LIDC-IDRI-0001"
    assert ct.series_uid == "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"
    assert ct.warnings == ()
    assert ct.metadata["series_folder"] == str(lidc0001)
    # the SOP UIDs are in slice order: each one's own header puts it at that slice's z
    by_uid = {str(h.SOPInstanceUID): h for h in headers.values()}
    assert sorted(ct.sop_uids) == sorted(by_uid)
    z = [float(by_uid[uid].ImagePositionPatient[2]) for uid in ct.sop_uids]
    np.testing.assert_allclose(z, ct.z_positions_mm)
    # the README's trap: 000001.dcm is instance 80 at z = -207.5, not the first slice
    first = headers["000001.dcm"]
    k = ct.sop_uids.index(str(first.SOPInstanceUID))
    assert int(first.InstanceNumber) == 80 and ct.z_positions_mm[k] == pytest.approx(-207.5)
    assert k == round((-207.5 - -340.0) / 2.5)


@pytest.mark.realdata
def test_padding_is_recorded_and_outside_field_of_view_is_kept(ct):
    # PixelPaddingValue is 63536 as US = -2000 as stored int16; no pixel has it, so nothing moves
    assert ct.metadata["pixel_padding_value"] == -2000
    assert ct.metadata["padded_voxels"] == 0
    assert ct.hu[:, 0, 0].tolist() == [-2048] * 133  # outside the field of view, as stored


@pytest.mark.realdata
def test_hu_equal_a_plain_pydicom_oracle(ct, lidc0001):
    # pylidc's semantics written out: sort by ImagePositionPatient z, slope/intercept, int16
    slices = sorted(
        (pydicom.dcmread(p) for p in lidc0001.glob("*.dcm")),
        key=lambda ds: float(ds.ImagePositionPatient[2]),
    )
    expected = np.stack(
        [ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices]
    ).astype(np.int16)
    np.testing.assert_array_equal(ct.hu, expected)


def _pylidc(home):
    """Import pylidc with its configuration in ``home``; it still imports the removed pkg_resources."""
    pytest.importorskip("sqlalchemy")
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:  # setuptools >= 81 dropped it; pylidc only needs resource_filename
            shim = types.ModuleType("pkg_resources")
            shim.resource_filename = lambda pkg, name: str(importlib.resources.files(pkg) / name)
            sys.modules["pkg_resources"] = shim
    return pytest.importorskip("pylidc")


@pytest.mark.realdata
def test_hu_and_spacing_equal_pylidc_to_volume(ct, realdata, tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("pylidc_home")
    (home / ".pylidcrc").write_text(f"[dicom]\npath = {realdata}\nwarn = True\n")
    monkeypatch.setenv("HOME", str(home))
    pl = _pylidc(home)
    scan = pl.query(pl.Scan).filter(pl.Scan.patient_id == "LIDC-IDRI-0001").first()
    assert scan.series_instance_uid == ct.series_uid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pylidc's own deprecation chatter
        volume = scan.to_volume(verbose=False)  # (y, x, z), int16
    np.testing.assert_array_equal(ct.hu, np.transpose(volume, (2, 0, 1)))
    assert ct.spacing_mm == pytest.approx(
        (scan.slice_spacing, scan.pixel_spacing, scan.pixel_spacing)
    )
    images = scan.load_all_dicom_images(verbose=False)
    assert [str(im.SOPInstanceUID) for im in images] == list(ct.sop_uids)


@pytest.mark.realdata
def test_quick_header_reader_agrees_with_pydicom(lidc0001):
    from napari_lungkd.io.dicom.header import _describe, read_dataset
    from napari_lungkd.io.dicom.tags import DatasetHeader, quick_header

    for path in sorted(lidc0001.glob("*.dcm"))[:5]:
        fast = _describe(path, quick_header(path))
        slow = _describe(path, DatasetHeader(read_dataset(path)))
        assert fast.frames == slow.frames and fast.pixels == slow.pixels
        assert fast.pixels.raw_offset + 512 * 512 * 2 == path.stat().st_size  # pixels end the file
        assert fast.pixels.padding == (-2000, -2000)
