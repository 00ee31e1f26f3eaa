"""The sample case: deterministic, cached, and shown in napari's sample menu like a chest CT."""

from __future__ import annotations

import numpy as np
import pytest

from napari_lungkd.phantom.sample import SAMPLE_KINDS, SAMPLE_SEED, ensure_sample_case


def test_sample_is_registered_with_npe2():
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-lungkd")
    keys = [s.key for s in manifest.contributions.sample_data]
    assert "synthetic_chest_ct" in keys


def test_sample_case_is_cached(tmp_path, monkeypatch):
    import napari_lungkd.phantom.sample as ps

    calls = []
    real = ps.make_sample_phantom
    monkeypatch.setattr(
        ps, "make_sample_phantom", lambda: calls.append(1) or real(size=64, n_slices=12)
    )
    first = ensure_sample_case(tmp_path)
    second = ensure_sample_case(tmp_path)
    assert first == second and len(calls) == 1
    assert len(list(first["series_dir"].glob("*.dcm"))) == 12 and first["xml"].is_file()
    assert f"seed{SAMPLE_SEED}" in str(first["case_dir"])


@pytest.mark.slow
def test_sample_matches_its_documented_checksum():
    """The sample is regenerated on each machine: it must come out byte-identical everywhere."""
    from pathlib import Path

    import napari_lungkd.phantom.sample as ps

    phantom = ps.make_sample_phantom()
    assert ps.hu_sha256(phantom) == ps.SAMPLE_HU_SHA256
    assert ps.labels_sha256(phantom) == ps.SAMPLE_LABELS_SHA256
    readme = (Path(__file__).resolve().parents[2] / "sample_data" / "README.md").read_text()
    assert ps.SAMPLE_HU_SHA256 in readme and str(ps.SAMPLE_SEED) in readme


@pytest.mark.gui
@pytest.mark.slow
def test_sample_opens_in_a_viewer(make_napari_viewer, qtbot, artifacts, tmp_path, monkeypatch):
    monkeypatch.setenv("LUNGKD_CACHE_DIR", str(tmp_path))
    viewer = make_napari_viewer()
    viewer.open_sample("napari-lungkd", "synthetic_chest_ct")
    names = [layer.name for layer in viewer.layers]
    image = viewer.layers[0]
    assert image.__class__.__name__ == "Image" and image.data.shape[1:] == (512, 512)
    readers = [n for n in names if "LIDC reader" in n]  # "<patient> · LIDC reader 1"
    assert len(readers) == 4 and any("LIDC consensus" in n for n in names)
    truth = viewer.layers["phantom truth"].data
    assert len(np.unique(truth)) - 1 == len(SAMPLE_KINDS)
    # show a slice through the largest nodule in the lung window and look at it
    z = int(np.argmax((truth > 0).sum(axis=(1, 2))))
    viewer.dims.set_current_step(0, z)
    viewer.window._qt_window.resize(1400, 950)
    qtbot.waitExposed(viewer.window._qt_window)
    assert viewer.dims.axis_labels == ("z", "y", "x")  # the slider is named, not "-3"
    viewer.reset_view()
    shot = viewer.screenshot(str(artifacts / "sample_chest_ct.png"), canvas_only=False)
    assert shot.shape[0] > 100 and shot[..., :3].std() > 20
