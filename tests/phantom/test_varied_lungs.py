"""The varied phantom's lungs: reproducible, look-alikes outside the nodules, real vessel density."""

from __future__ import annotations

import numpy as np
import pytest

from napari_lungkd.phantom import make_phantom

# vessel cross-sections (1-80 mm², > -500 HU, lung > 5 mm from the pleura) per cm² per slice
# (median over slices), measured by bench/phantom_realism.py on the seven real chests of
# ../shared/realdata: 0.077 (elastix crop), 0.119, 0.174, 0.214 (median), 0.223, 0.469, 0.516.
# A phantom case must lie within the middle five (0.119-0.469), the spread of real scans without
# the two extremes (a lung crop and a 5 mm PET-CT series).
REAL_DENSITY = (0.119, 0.469)


@pytest.fixture(scope="module")
def varied():
    return make_phantom(21, size=160, n_slices=60, n_nodules=4, varied=True)


def test_same_seed_gives_identical_bytes_for_the_varied_phantom(varied):
    b = make_phantom(21, size=160, n_slices=60, n_nodules=4, varied=True)
    assert varied.hu.tobytes() == b.hu.tobytes()
    assert varied.labels.tobytes() == b.labels.tobytes()
    assert varied.lookalikes == b.lookalikes and varied.metadata == b.metadata
    c = make_phantom(22, size=160, n_slices=60, n_nodules=4, varied=True)
    assert varied.hu.tobytes() != c.hu.tobytes()


def test_the_varied_lungs_hold_trees_bronchi_and_fissures(varied):
    m = varied.metadata
    assert m["n_vessel_segments"] > 1500 and m["n_bronchi"] > 20
    assert m["fissures"] == ["oblique", "oblique", "horizontal"]


def test_lookalikes_are_recorded_outside_the_nodule_labels(varied):
    looks = varied.lookalikes
    assert looks, "a varied case records its look-alikes"
    kinds = {lk["kind"] for lk in looks}
    assert "vessel_junction" in kinds
    assert kinds <= {"vessel_junction", "scar", "atelectasis_band", "mucus_plug"}
    sp = np.asarray(varied.spacing_mm)
    for lk in looks:
        c = np.asarray(lk["centre_zyx"])
        k, j, i = np.round(c).astype(int)
        r = np.maximum(np.ceil(0.25 * lk["size_mm"] / sp).astype(int), 1)
        box = varied.labels[
            max(k - r[0], 0) : k + r[0] + 1,
            max(j - r[1], 0) : j + r[1] + 1,
            max(i - r[2], 0) : i + r[2] + 1,
        ]
        assert not box.any(), lk
        for n in varied.nodules:
            assert np.linalg.norm((c - np.asarray(n.centre_zyx)) * sp) > 0.5 * n.diameter_mm


def test_lookalikes_cover_every_kind_over_a_few_cases():
    kinds = set()
    for seed in range(6):
        kinds |= {
            lk["kind"] for lk in make_phantom(seed, size=96, n_slices=40, varied=True).lookalikes
        }
    assert {"vessel_junction", "scar", "atelectasis_band", "mucus_plug"} <= kinds


@pytest.mark.slow
def test_vessel_cross_section_density_lies_in_the_real_range():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "realism_measures.py"
    spec = importlib.util.spec_from_file_location("realism_measures", path)
    measures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(measures)
    ph = make_phantom(1000, size=512, n_slices=100, varied=True)  # ~3 mm slices, like most reals
    d = measures.vessel_measures(ph.hu, ph.spacing_mm)["density"]
    assert REAL_DENSITY[0] <= d <= REAL_DENSITY[1], d
