"""The napari reader for LIDC XML: reader layers on the open CT, or on the XML-only grid."""

from __future__ import annotations

import numpy as np
import pytest
from lidc_xml_builders import two_reader_xml

from napari_lungkd._napari.framing import camera_of
from napari_lungkd._napari.lidc_reader import (
    get_lidc_reader,
    lidc_layers_for_ct,
    lidc_layers_xml_only,
    read_lidc_layers,
)


def test_reader_hook_takes_lidc_xml_only(tmp_path):
    lidc = tmp_path / "read.xml"
    lidc.write_text(two_reader_xml())
    other = tmp_path / "other.xml"
    other.write_text("<project><name>not LIDC</name></project>")
    cxr = tmp_path / "cxr.xml"
    cxr.write_text('<?xml version="1.0"?><IdriReadMessage xmlns="http://www.nih.gov/idri"/>')
    assert get_lidc_reader(str(lidc)) is read_lidc_layers
    assert get_lidc_reader([str(lidc)]) is read_lidc_layers
    assert get_lidc_reader(str(other)) is None
    assert get_lidc_reader(str(tmp_path / "missing.xml")) is None
    assert get_lidc_reader(str(tmp_path)) is None
    # a radiograph read is taken, so that the user is told why it cannot be shown
    assert get_lidc_reader(str(cxr)) is read_lidc_layers


def test_xml_only_layer_tuples(tmp_path):
    p = tmp_path / "read.xml"
    p.write_text(two_reader_xml())
    layers = lidc_layers_xml_only(p)
    assert [kw["name"] for _, kw, _ in layers] == [
        "LIDC reader 1",
        "LIDC reader 2",
        "LIDC consensus 50%",
    ]
    assert all(t == "labels" for _, _, t in layers)
    r1, r2, cons = (d for d, _, _ in layers)
    assert r1.shape == (4, 512, 512) and int((r1 > 0).sum()) == 18 and set(np.unique(r2)) == {0, 2}
    assert int((cons > 0).sum()) == 23
    assert layers[0][1]["translate"] == (-30.0, 0.0, 0.0)


@pytest.mark.gui
def test_radiograph_xml_adds_no_layer_and_says_why(make_napari_viewer, tmp_path, monkeypatch):
    import napari.utils.notifications as notifications

    messages = []
    monkeypatch.setattr(notifications, "show_error", messages.append)
    viewer = make_napari_viewer()
    cxr = tmp_path / "cxr.xml"
    cxr.write_text('<?xml version="1.0"?><IdriReadMessage xmlns="http://www.nih.gov/idri"/>')
    assert read_lidc_layers(str(cxr)) == [(None,)]
    assert len(viewer.layers) == 0
    assert messages and "chest-radiograph read" in messages[0]


@pytest.mark.gui
@pytest.mark.realdata
def test_069_opens_aligned_on_the_ct(make_napari_viewer, lidc0001, artifacts, qtbot):
    from napari_lungkd._napari.layers import ct_layer_data
    from napari_lungkd.io import load_ct

    viewer = make_napari_viewer()
    ct = load_ct(lidc0001)
    data, kwargs, _ = ct_layer_data(ct)
    ct_layer = viewer.add_image(data, **kwargs)
    viewer.open(str(lidc0001 / "069.xml"), plugin="napari-lungkd")
    added = [layer for layer in viewer.layers if layer is not ct_layer]
    assert [layer.name for layer in added] == [
        "LIDC-IDRI-0001 · LIDC consensus",
        "LIDC-IDRI-0001 · LIDC reader 1",
        "LIDC-IDRI-0001 · LIDC reader 2",
        "LIDC-IDRI-0001 · LIDC reader 3",
        "LIDC-IDRI-0001 · LIDC reader 4",
    ]  # the consensus under the readers' outlines
    assert all(layer.contour > 0 for layer in added)  # outlines by default
    # opened again (File > Open): the same layers are reused, none duplicated
    before = list(viewer.layers)
    viewer.open(str(lidc0001 / "069.xml"), plugin="napari-lungkd")
    assert list(viewer.layers) == before
    added = added[1:] + added[:1]  # readers, then the consensus
    assert len(viewer.layers) == 6
    for layer in added:
        assert layer.data.shape == ct.hu.shape
        np.testing.assert_allclose(layer.scale, ct_layer.scale)
        np.testing.assert_allclose(layer.translate, ct_layer.translate)
        assert layer.metadata["lungkd_ct"] is ct
    consensus = added[-1].data > 0
    assert int(consensus.sum()) == 5428 and ct.hu[consensus].mean() > -300
    # show the nodule's middle slice, zoomed in, and keep a screenshot for people to look at
    z, y, x = np.argwhere(consensus).mean(axis=0)
    world = np.asarray(ct_layer.translate) + np.asarray(ct_layer.scale) * (z, y, x)
    viewer.dims.set_point(0, world[0])
    camera = camera_of(viewer)
    camera.center = tuple(world[1:])
    camera.zoom = camera.zoom * 2.5
    qtbot.waitUntil(lambda: all(layer.loaded for layer in viewer.layers), timeout=10_000)
    shot = viewer.screenshot(str(artifacts / "lidc_readers.png"), canvas_only=False, flash=False)
    assert shot.ndim == 3 and shot[..., :3].std() > 10  # an image, not a blank window


def test_layers_for_ct_reuse_the_ct_placement(tmp_path):
    from lidc_xml_builders import fake_ct

    from napari_lungkd.lidc import read_lidc_xml

    p = tmp_path / "read.xml"
    p.write_text(two_reader_xml())
    ct = fake_ct(n_yx=512)
    layers = lidc_layers_for_ct(ct, read_lidc_xml(p), level=1.0)
    assert [kw["name"] for _, kw, _ in layers][-1] == f"{ct.patient_id or ct.name} · LIDC consensus"
    for data, kw, _ in layers:
        assert data.shape == ct.shape
        assert kw["scale"] == ct.spacing_mm and kw["translate"] == (-15.0, -64.0, -64.0)
        assert kw["metadata"]["lungkd_ct"] is ct
