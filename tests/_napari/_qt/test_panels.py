"""The widget's controls without running a model: CT chooser, window presets, devices, refusals."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture
def small(make_napari_viewer):
    from napari.layers import Layer

    from napari_lungkd._napari._qt.widget import LungNodulesWidget
    from napari_lungkd._napari.layers import ct_layer_data
    from napari_lungkd.phantom import make_phantom

    ct = make_phantom(3, size=48, n_slices=8).to_ct()
    viewer = make_napari_viewer()
    layer = viewer.add_layer(Layer.create(*ct_layer_data(ct)))
    widget = LungNodulesWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    messages = []
    from napari.utils.notifications import notification_manager

    notification_manager.notification_ready.connect(lambda n: messages.append(str(n.message)))
    return viewer, widget, layer, ct, messages


def test_ct_chooser_follows_the_layer_list_and_window_presets_apply(small):
    from napari_lungkd.windowing import contrast_limits

    viewer, widget, layer, ct, _ = small
    combo = widget.segment_panel.ct_combo
    assert [combo.itemText(i) for i in range(combo.count())] == [layer.name]
    assert widget.ct() is ct
    viewer.add_image(np.zeros((4, 4)), name="not a CT")  # no lungkd_ct metadata: not offered
    assert combo.count() == 1
    widget.segment_panel.window_combo.setCurrentText("bone")
    assert tuple(layer.contrast_limits) == pytest.approx(contrast_limits("bone"))
    widget.segment_panel.window_combo.setCurrentText("lung")
    assert tuple(layer.contrast_limits) == pytest.approx(contrast_limits("lung"))
    viewer.layers.remove(layer)
    assert combo.count() == 0 and widget.ct() is None


def test_closing_the_widget_disconnects_its_viewer_hooks(small, monkeypatch):
    from napari.layers import Layer

    from napari_lungkd._napari._qt.widget import LungNodulesWidget
    from napari_lungkd._napari.layers import ct_layer_data
    from napari_lungkd.phantom import make_phantom

    viewer, widget, layer, ct, _ = small
    combo = widget.segment_panel.ct_combo
    calls = []
    # napari calls a connected method by its name at emit time: count every handler's calls
    for name in ("_refresh_ct_choices", "_ct_changed", "apply_window"):
        real = getattr(LungNodulesWidget, name)

        def counting(self, *args, real=real, name=name):
            calls.append(name)
            return real(self, *args)

        monkeypatch.setattr(LungNodulesWidget, name, counting)
    extra = viewer.add_image(np.zeros((4, 4)), name="not a CT")
    assert "_refresh_ct_choices" in calls  # connected while open
    emitters = (viewer.layers.events.inserted, viewer.layers.events.removed)
    assert any(cb[0]() is widget for e in emitters for cb in e.callbacks if isinstance(cb, tuple))

    widget.close()
    calls.clear()
    other = make_phantom(4, size=48, n_slices=8).to_ct()
    viewer.add_layer(Layer.create(*ct_layer_data(other)))
    viewer.layers.remove(extra)
    viewer.layers.remove(layer)
    assert calls == []  # none of its handlers ran
    assert not any(
        cb[0]() is widget for e in emitters for cb in e.callbacks if isinstance(cb, tuple)
    )
    assert combo.count() == 1 and widget.session.ct is ct  # the widget no longer follows


def test_devices_offered_are_those_torch_has():
    import torch

    from napari_lungkd._napari._qt.segment_panel import available_devices

    devices = available_devices()
    assert devices[0] == "auto" and "cpu" in devices
    assert ("cuda" in devices) == torch.cuda.is_available()


def test_refusals_are_one_sentence_notifications(small, tmp_path):
    from napari_lungkd.io.masks import write_mask

    viewer, widget, layer, ct, messages = small
    bad = tmp_path / "bad.xml"
    bad.write_text("<notLidc/>")
    assert widget.lidc.open(bad) is False
    assert messages and "bad.xml" in messages[-1]
    # a mask of another geometry is refused, not silently misaligned
    from napari_lungkd.ct import CtVolume

    other = CtVolume(hu=np.zeros((3, 5, 5), np.int16), spacing_mm=(1.0, 1.0, 1.0))
    write_mask(tmp_path / "other.nii.gz", np.ones((3, 5, 5), np.uint8), other)
    assert widget.masks.load(tmp_path / "other.nii.gz") is None
    assert "other.nii.gz" in messages[-1]
    # saving with no mask layer says so
    assert widget.masks.save(tmp_path / "none.nii.gz") is None
    assert "no mask layer" in messages[-1]
    assert not (tmp_path / "none.nii.gz").exists()


def test_triton_guard_only_acts_when_mesa_llvm_is_loaded_and_triton_is_not(monkeypatch):
    import sys

    from napari_lungkd._napari import torch_guard

    monkeypatch.setitem(sys.modules, "triton", None)  # records the real state, restored after
    monkeypatch.delitem(sys.modules, "triton")
    monkeypatch.setattr(torch_guard, "mesa_llvm_loaded", lambda: False)
    assert torch_guard.guard_triton() is False and "triton" not in sys.modules
    monkeypatch.setattr(torch_guard, "mesa_llvm_loaded", lambda: True)
    assert torch_guard.guard_triton() is True and sys.modules["triton"] is None
    with pytest.raises(ImportError):
        import triton  # noqa: F401
    assert torch_guard.guard_triton() is False  # already decided: left alone
