"""The napari reader contribution: which paths it takes, the layer it gives, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from dicom_factory import write_series

from napari_lungkd._napari import reader as reader_module
from napari_lungkd._napari.layers import aligned_kwargs, ct_layer_data
from napari_lungkd._napari.reader import get_ct_reader, read_ct
from napari_lungkd.io import load_ct


def test_reader_declines_what_is_not_ct(tmp_path):
    (tmp_path / "069.xml").write_text("<LidcReadMessage/>")
    (tmp_path / "notes").write_text("just text, no suffix")
    (tmp_path / "notes.txt").write_text("text")
    empty = tmp_path / "empty"
    empty.mkdir()
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.md").write_text("# hello")
    zarr = tmp_path / "image.zarr"
    zarr.mkdir()
    (zarr / "0.dcm").write_bytes(b"")
    for path in ("069.xml", "notes", "notes.txt", "empty", "texts", "image.zarr", "nowhere"):
        assert get_ct_reader(str(tmp_path / path)) is None, path
    assert get_ct_reader([str(tmp_path / "notes"), str(tmp_path / "069.xml")]) is None


def test_reader_accepts_ct_paths(tmp_path):
    series = write_series(tmp_path / "patient" / "series", 3)
    no_suffix = tmp_path / "IM0001"
    no_suffix.write_bytes(series.files[0].read_bytes())
    sitk.WriteImage(
        sitk.GetImageFromArray(np.zeros((2, 3, 4), np.int16)), str(tmp_path / "ct.nii.gz")
    )
    for path in (tmp_path / "patient", series.files[0], no_suffix, tmp_path / "ct.nii.gz"):
        assert get_ct_reader(str(path)) is read_ct, path
    assert get_ct_reader([str(tmp_path / "patient")]) is read_ct


def test_layer_data_is_named_placed_windowed_and_carries_the_ct(tmp_path):
    series = write_series(tmp_path / "s", 4)
    ((data, kwargs, layer_type),) = read_ct(str(tmp_path / "s"))
    assert layer_type == "image"
    np.testing.assert_array_equal(data, series.hu)
    ct = kwargs["metadata"]["lungkd_ct"]
    assert kwargs["name"] == f"SYN-0001 {series.series_uid[-8:]}"
    assert kwargs["scale"] == pytest.approx((2.5, 0.7, 0.8))
    assert kwargs["translate"] == pytest.approx((-50.0, -120.0, -100.0))  # origin z, y, x
    assert kwargs["contrast_limits"] == (-1350.0, 150.0)
    assert ct.metadata["series_folder"] == str(tmp_path / "s")
    derived = aligned_kwargs(ct)
    assert derived == {
        "scale": kwargs["scale"],
        "translate": kwargs["translate"],
        "axis_labels": ("z", "y", "x"),  # napari's dims slider names the slice axis "z"
        "metadata": {"lungkd_ct": ct},
    }
    assert kwargs["axis_labels"] == ("z", "y", "x")


def test_bad_input_gives_one_notification_and_no_layer(tmp_path, monkeypatch):
    errors, warnings = [], []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    monkeypatch.setattr("napari.utils.notifications.show_warning", warnings.append)
    mr = tmp_path / "mr"
    write_series(mr, 2, modality="MR")
    assert read_ct(str(mr)) == reader_module.NOTHING
    assert len(errors) == 1 and str(mr) in errors[0] and "MR" in errors[0]
    assert warnings == []
    gap = write_series(tmp_path / "gap", 5, skip=(2,))
    (layer,) = read_ct(str(gap.folder))
    assert layer[0].shape == (4, 6, 7)
    assert len(warnings) == 1 and "missing slice" in warnings[0]


def test_oblique_ct_layer_gets_its_rotation(tmp_path):
    angle = np.radians(10)
    rot = np.array(
        [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]]
    )
    image = sitk.GetImageFromArray(np.zeros((2, 3, 4), np.int16))
    image.SetDirection(rot.ravel().tolist())
    sitk.WriteImage(image, str(tmp_path / "oblique.nii.gz"))
    _, kwargs, _ = ct_layer_data(load_ct(tmp_path / "oblique.nii.gz"))
    np.testing.assert_allclose(kwargs["rotate"], rot[::-1, ::-1], atol=1e-6)


@pytest.mark.gui
@pytest.mark.realdata
def test_viewer_opens_lidc0001_through_the_plugin(
    make_napari_viewer, lidc0001, artifacts, tmp_path, qtbot
):
    viewer = make_napari_viewer()
    layers = viewer.open(str(lidc0001), plugin="napari-lungkd")
    assert len(layers) == 1 and len(viewer.layers) == 1
    layer = viewer.layers[0]
    assert layer.name == "LIDC-IDRI-0001 20603192"
    assert tuple(layer.scale) == pytest.approx((2.5, 0.703125, 0.703125))
    assert tuple(layer.translate) == pytest.approx((-340.0, -171.699997, -166.0))
    assert tuple(layer.contrast_limits) == pytest.approx((-1350.0, 150.0))
    assert layer.data.shape == (133, 512, 512)
    assert layer.metadata["lungkd_ct"].series_uid.endswith("20603192")
    # world coordinates are LPS mm: slice 80 (z = -140 mm) is at world z -140
    viewer.dims.set_point(0, -140.0)
    assert layer.world_to_data((-140.0, -171.699997, -166.0)) == pytest.approx((80, 0, 0))
    viewer.window.resize(1100, 760)
    viewer.reset_view()
    qtbot.waitUntil(lambda: layer.loaded, timeout=10_000)  # its slice is there to draw
    shot = viewer.screenshot(
        canvas_only=False, flash=False
    )  # the whole window: a hidden canvas grabs black
    assert shot.ndim == 3 and shot[..., :3].std() > 10  # a real image, not a blank canvas
    import imageio.v3 as iio

    iio.imwrite(artifacts / "reader_lidc0001.png", shot)
    # a bad folder in the same viewer: a notification, no exception, the viewer keeps its layer
    (tmp_path / "a.dcm").write_bytes(b"\x00" * 300)
    assert viewer.open(str(tmp_path), plugin="napari-lungkd") == []
    assert len(viewer.layers) == 1
