"""Hostile weights files (tests/hostile_files.py): one WeightsError sentence naming the file,
before any tensor is used; pinned files (the bundled ones) still load and say so."""

from __future__ import annotations

import json

import pytest
from hostile_files import WEIGHTS_CASES, tiny_state
from hostile_inputs import snapshot

from napari_lungkd.errors import WeightsError
from napari_lungkd.models.specs import get_spec
from napari_lungkd.models.weights_file import load_weights, save_weights


@pytest.mark.parametrize("case", WEIGHTS_CASES, ids=str)
def test_hostile_weights_are_refused_with_one_sentence(tmp_path, case):
    path = case.build(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(WeightsError) as info:
        load_weights(path)
    message = str(info.value)
    assert str(path) in message and case.says in message, message
    assert "\n" not in message
    assert snapshot(tmp_path) == before


def test_a_sound_file_loads_and_says_it_is_not_pinned(tmp_path):
    path = tmp_path / "student.safetensors"
    sha = save_weights(path, tiny_state(), get_spec("student"))
    _, info = load_weights(path)
    assert info.sha256 == sha and info.format_version == 2 and not info.pinned
    assert any("not one of the pinned" in w and sha[:12] in w for w in info.warnings)
    assert info.summary()["pinned"] is False


def test_a_format_1_file_loads_only_when_its_sha256_is_pinned(tmp_path):
    from hostile_files import WEIGHTS_CASES as cases

    (case,) = [c for c in cases if c.name == "weights-format-1-unpinned"]
    path = case.build(tmp_path)
    from napari_lungkd.models.weights_file import file_sha256

    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"student": {"file": path.name, "sha256": file_sha256(path)}}))
    _, info = load_weights(path, registry=registry)
    assert info.pinned and info.format_version == 1 and not info.warnings


@pytest.mark.parametrize("name", ["student", "teacher", "student_baseline"])
def test_bundled_format_1_files_are_pinned_and_load(name):
    from napari_lungkd.models.weights import BUNDLED_DIR, read_registry

    entry = read_registry()[name]
    _, info = load_weights(BUNDLED_DIR / entry["file"])
    assert info.pinned and info.sha256 == entry["sha256"]
    assert not any("pinned" in w for w in info.warnings)
