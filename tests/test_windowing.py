"""Window presets -> contrast limits."""

from __future__ import annotations

import pytest

from napari_lungkd.windowing import PRESETS, contrast_limits, get_window, window_from_limits


def test_presets_give_the_clinical_limits():
    assert contrast_limits("lung") == (-1350.0, 150.0)  # W 1500 / L -600
    assert contrast_limits("mediastinum") == (-125.0, 225.0)  # W 350 / L 50
    assert contrast_limits("bone") == (-500.0, 1300.0)  # W 1800 / L 400
    assert contrast_limits() == contrast_limits("lung")
    assert list(PRESETS) == ["lung", "mediastinum", "bone"]
    assert contrast_limits(" Lung ") == (-1350.0, 150.0)


def test_unknown_preset_and_round_trip():
    with pytest.raises(ValueError, match="lung, mediastinum, bone"):
        get_window("brain")
    window = window_from_limits(-125.0, 225.0)
    assert (window.width_hu, window.level_hu) == (350.0, 50.0)
    with pytest.raises(ValueError):
        window_from_limits(10, 10)
