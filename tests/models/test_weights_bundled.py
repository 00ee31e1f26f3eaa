"""The weights that ship in the package: present, within the size limits, verified, and useful.

These are the files `lungkd demo` and the widget use when the user has none of their own
(issue 8): the distilled student, the teacher and the baseline student, trained by
`python -m src_training.oneshot` on one H200 (issue 15; docs/training/oneshot_h200_2026-11-29) on
varied phantoms (seeds 0-31) and nodules inserted into four real chests. The sample case (the
classic phantom, seed 115) was never in their training data.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_lungkd.models.weights import BUNDLED_DIR, read_registry, verify

MB = 1_000_000
REGISTRY = read_registry()


def test_registry_holds_teacher_student_and_baseline_within_size_limits():
    assert {"student", "teacher", "student_baseline"} <= set(REGISTRY)
    sizes = {name: (BUNDLED_DIR / e["file"]).stat().st_size for name, e in REGISTRY.items()}
    assert all(size < 95 * MB for size in sizes.values()), sizes
    assert sum(sizes.values()) <= 100 * MB, sizes


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_bundled_file_verifies_against_its_pinned_hash(name):
    entry = REGISTRY[name]
    info = verify(BUNDLED_DIR / entry["file"])
    assert info.sha256 == entry["sha256"]
    meta = info.metadata
    # provenance a user can check: how it was trained, on which cases, and how well it did
    assert meta["training"]["config"]["name"] in {"teacher", "student_kd", "student_baseline"}
    assert meta["training_data"]["real_hosts"] and meta["training_data"]["steps"] > 0
    assert meta["data_split"]
    assert meta["metrics"]["val_dice_best"] > 0


@pytest.fixture(scope="module")
def sample():
    from napari_lungkd import load_ct
    from napari_lungkd.io.masks import read_mask
    from napari_lungkd.phantom.sample import ensure_sample_case

    paths = ensure_sample_case()
    ct = load_ct(paths["series_dir"])
    truth = read_mask(paths["truth_mask"], ct) > 0
    return ct, truth


@pytest.mark.slow
def test_bundled_student_finds_the_sample_nodules(sample, monkeypatch, tmp_path):
    from napari_lungkd.inference.segmenter import segment
    from napari_lungkd.scoring.metrics import dice

    monkeypatch.setenv("LUNGKD_WEIGHTS_DIR", str(tmp_path))  # only the bundled files
    ct, truth = sample
    seg = segment(ct, "student", device="cpu")
    assert seg.provenance.weights_sha256 == REGISTRY["student"]["sha256"]
    assert "inserted truth" in seg.provenance.trained_on["reference"]  # from the file's header
    assert dice(seg.mask > 0, truth) > MIN_SAMPLE_DICE["student"]


def _slab(ct, truth, half: int = 6):
    """The slices around the largest true nodule, as a CtVolume of its own (keeps the test short)."""
    from dataclasses import replace

    from scipy import ndimage

    labels, n = ndimage.label(truth)
    sizes = ndimage.sum(truth, labels, range(1, n + 1))
    z = int(ndimage.center_of_mass(labels == (int(np.argmax(sizes)) + 1))[0])
    z0, z1 = max(0, z - half), min(ct.shape[0], z + half)
    origin = ct.index_to_lps(np.array([z0, 0, 0]))
    sub = replace(
        ct,
        hu=ct.hu[z0:z1],
        origin_mm=tuple(float(v) for v in origin),
        sop_uids=ct.sop_uids[z0:z1] if ct.sop_uids else None,
        z_positions_mm=ct.z_positions_mm[z0:z1] if ct.z_positions_mm is not None else None,
    )
    return sub, truth[z0:z1]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["teacher", "student_baseline"])
def test_bundled_teacher_and_baseline_segment_the_largest_sample_nodule(sample, name):
    from napari_lungkd.inference.segmenter import segment
    from napari_lungkd.scoring.metrics import dice

    ct, truth = _slab(*sample)
    model = "teacher" if name == "teacher" else "student"
    seg = segment(ct, model, device="cpu", weights=BUNDLED_DIR / REGISTRY[name]["file"])
    assert dice(seg.mask > 0, truth) > MIN_SAMPLE_DICE[name]


# Measured on the sample case with the bundled files (student 0.12 on the whole case, where it
# also marks 87 objects: the classic phantom's vessels are not what it learned from; on the slab
# around the largest nodule student 0.35, teacher 0.62, baseline 0.31), minus a margin: a
# retrained model that falls below these has lost what the bundled one could do.
# (The weights before issue 15, trained on classic phantoms only: 0.43 whole, slab teacher 0.63,
# baseline 0.82; on real chests they marked 152 false nodules per scan, these 14-23.)
MIN_SAMPLE_DICE = {"student": 0.08, "teacher": 0.45, "student_baseline": 0.2}
