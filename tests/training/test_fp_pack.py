"""The candidate-table pack for a GPU machine: phantom patches left out and made again from the
seed (hash-checked), real-anatomy patches carried, a pack over the limit refused."""

from __future__ import annotations

import numpy as np
import pytest

from napari_lungkd.errors import TrainingError
from napari_lungkd.inference.candidate_patches import candidate_patches
from src_training import fp_pack
from src_training.fp_data import CaseTable, phantom_case

SMALL = 48  # a phantom of 48 pixels keeps the test fast


@pytest.fixture
def small_phantoms(monkeypatch):
    monkeypatch.setattr(fp_pack, "phantom_case", lambda seed: phantom_case(seed, size=SMALL))


def _table(name, kind, hu, spacing, centres):
    n = len(centres)
    return CaseTable(
        name,
        name,
        kind,
        True,
        np.zeros((n, 2)),
        np.full(n, -1, np.int32),
        np.zeros(n, bool),
        0,
        {"model": 1.0},
        np.asarray(centres, np.float32),
        candidate_patches(hu, spacing, centres),
    )


def _cases():
    ct = phantom_case(5003, size=SMALL).to_ct()
    centres = [[10.0, 20.0, 24.0], [30.5, 12.0, 30.0]]
    phantom = _table("phantom-5003", "phantom", ct.hu, ct.spacing_mm, centres)
    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 300, (20, 40, 40)).astype(np.int16)
    real = _table("chest", "real", hu, (2.0, 0.7, 0.7), [[10, 20, 20]])
    return phantom, real


def test_pack_leaves_phantom_patches_out_and_unpack_makes_them_again(small_phantoms, tmp_path):
    phantom, real = _cases()
    info = fp_pack.pack([phantom, real], tmp_path / "p.zip")
    assert info == {"tables": 2, "phantoms": 1, "bytes": (tmp_path / "p.zip").stat().st_size}
    assert info["bytes"] < phantom.patches.nbytes  # the phantom's patches did not travel
    paths = fp_pack.unpack(tmp_path / "p.zip", tmp_path / "c", "student", log=lambda s: None)
    got = {p.stem: CaseTable.load(p) for p in paths}
    assert np.array_equal(got["phantom-5003"].patches, phantom.patches)
    assert np.array_equal(got["chest"].patches, real.patches)
    assert np.array_equal(got["chest"].centres, real.centres)


def test_a_phantom_made_differently_is_refused(small_phantoms, tmp_path, monkeypatch):
    phantom, real = _cases()
    fp_pack.pack([phantom, real], tmp_path / "p.zip")
    monkeypatch.setattr(fp_pack, "phantom_case", lambda seed: phantom_case(seed + 1, size=SMALL))
    with pytest.raises(TrainingError, match="other patches"):
        fp_pack.unpack(tmp_path / "p.zip", tmp_path / "c", "student", log=lambda s: None)
    assert not (tmp_path / "c" / "student").exists()


def test_a_pack_over_the_limit_is_refused_and_not_written(tmp_path):
    _, real = _cases()
    with pytest.raises(TrainingError, match="over the"):
        fp_pack.pack([real], tmp_path / "p.zip", limit=1000)
    assert not list(tmp_path.iterdir())
