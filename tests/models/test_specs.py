"""Model specs, building and preprocessing (no weights, tiny arrays)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_lungkd.errors import ModelError
from napari_lungkd.models.specs import (
    ModelSpec,
    build_model,
    context_indices,
    count_parameters,
    get_spec,
    pad_to_multiple,
    preprocess_slices,
)


def test_student_parameter_count_matches_design():
    # DESIGN.md: student smp Unet(resnet18), 1 input channel -> 14.32 M parameters
    model = build_model(get_spec("student"))
    assert round(count_parameters(model) / 1e6, 2) == 14.32


@pytest.mark.slow
def test_teacher_parameter_count_matches_design():
    model = build_model(get_spec("teacher"))
    assert round(count_parameters(model) / 1e6, 2) == 67.15


def test_assistant_specs_exist_for_the_teacher_assistant_chain():
    assert get_spec("resnet34").encoder == "resnet34"
    assert get_spec("assistant50").encoder == "resnet50"
    with pytest.raises(ModelError, match="Unknown model"):
        get_spec("resnet9000")


def test_spec_round_trips_through_dict_and_rejects_bad_values():
    spec = get_spec("student").with_(context_slices=3, threshold=0.4)
    again = ModelSpec.from_dict(spec.to_dict())
    assert again == spec
    assert again.in_channels == 3
    with pytest.raises(ModelError, match="odd"):
        spec.with_(context_slices=2)
    with pytest.raises(ModelError, match="threshold"):
        spec.with_(threshold=1.5)
    with pytest.raises(ModelError, match="unknown fields"):
        ModelSpec.from_dict({**spec.to_dict(), "colour": "blue"})


def test_preprocess_window_maps_air_to_0_and_bone_to_1():
    spec = get_spec("student")
    hu = np.array([[[-2048, -1000, -300, 400, 1500]]], dtype=np.int16)
    x = preprocess_slices(hu, spec)
    assert x.shape == (1, 1, 1, 5) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0, 0], [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
    assert hu[0, 0, 0] == -2048  # the caller's array is untouched


def test_context_slices_are_neighbours_with_edges_replicated():
    spec = get_spec("student").with_(context_slices=3)
    hu = (np.arange(5, dtype=np.int16)[:, None, None] * 100 - 1000) * np.ones((1, 2, 2), np.int16)
    x = preprocess_slices(hu, spec, indices=[0, 2, 4])
    assert x.shape == (3, 3, 2, 2)
    # channel 1 is the slice itself, 0 the one below, 2 the one above; ends repeat
    levels = np.round(x[:, :, 0, 0] * 1400 - 1000).astype(int)
    assert levels.tolist() == [[-1000, -1000, -900], [-900, -800, -700], [-700, -600, -600]]
    assert context_indices(np.array([0]), 5, 5).tolist() == [[0, 0, 0, 1, 2]]


def test_pad_to_multiple_pads_with_air():
    x = np.ones((2, 1, 40, 70), np.float32)
    padded, hw = pad_to_multiple(x, 32, 0.0)
    assert padded.shape == (2, 1, 64, 96) and hw == (40, 70)
    assert padded[..., 40:, :].max() == 0.0 and padded[..., :40, :70].min() == 1.0


def test_student_runs_on_a_tiny_input():
    import torch

    model = build_model(get_spec("student"))
    with torch.inference_mode():
        y = model(torch.zeros(1, 1, 64, 64))
    assert y.shape == (1, 1, 64, 64)
