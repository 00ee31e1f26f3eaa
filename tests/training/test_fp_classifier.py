"""The false-positive classifier's training: candidate labels, held-out scoring, operating point, export."""

from __future__ import annotations

import numpy as np
import pytest

from napari_lungkd.inference.candidate_features import FEATURE_NAMES
from napari_lungkd.models.tree_ensemble import load_tree_ensemble
from src_training.fp_data import CaseTable, phantom_table

pytest.importorskip("sklearn")
BLOB = FEATURE_NAMES.index("blobness")


def _table(name, patient, kind, n_refs, n_fp, rng, trainable=True, n_ignored=0):
    """Nodules are blob-like, false positives tube-like (with overlap), as on real scans."""
    n = n_refs + n_fp + n_ignored
    x = rng.normal(size=(n, len(FEATURE_NAMES)))
    x[:n_refs, BLOB] += 2.5
    ref_hit = np.r_[np.arange(n_refs), np.full(n_fp + n_ignored, -1)].astype(np.int32)
    ignored = np.r_[np.zeros(n_refs + n_fp, bool), np.ones(n_ignored, bool)]
    return CaseTable(name, patient, kind, trainable, x, ref_hit, ignored, n_refs, {})


@pytest.fixture(scope="module")
def tables():
    rng = np.random.default_rng(1)
    out = [_table(f"phantom-{i}", f"phantom-{i}", "phantom", 4, 30, rng) for i in range(8)]
    out += [
        _table(f"real-{i}", f"real-{i}", "real", 1 if i == 0 else 0, 120, rng, n_ignored=3)
        for i in range(3)
    ]
    out.append(_table("nc", "nc", "real", 0, 100, rng, trainable=False))
    return out


def test_table_round_trip(tmp_path, tables):
    t = tables[0]
    t.save(tmp_path / "t.npz")
    back = CaseTable.load(tmp_path / "t.npz")
    np.testing.assert_array_equal(back.features, t.features)
    np.testing.assert_array_equal(back.y, t.y)
    assert (back.name, back.kind, back.trainable, back.n_references) == (
        t.name,
        t.kind,
        t.trainable,
        t.n_references,
    )


def test_held_out_scores_never_train_on_the_patient_and_the_export_verifies(tmp_path, tables):
    from src_training.fp_classifier import held_out_scores, train_and_export

    held = held_out_scores(tables, log=lambda s: None)
    assert {t.name for t in held.tables} == {t.name for t in tables}
    for t in held.tables:
        assert t.patient in held.trained_without[t.name] or t.name in held.trained_without[t.name]
    report = train_and_export(tables, tmp_path / "fp.safetensors", log=lambda s: None)
    model = load_tree_ensemble(tmp_path / "fp.safetensors", expected_features=FEATURE_NAMES)
    assert model.default_threshold == report["default_threshold"]
    ops = report["operating_points"]
    assert [o["fp_per_scan"] for o in ops] == [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    thr = [o["threshold"] for o in ops]
    # more false positives allowed: a lower threshold
    assert all(a >= b for a, b in zip(thr, thr[1:]))
    assert all(o["fp_per_scan_measured"] <= o["fp_per_scan"] + 1e-9 for o in ops)
    # the separable toy: far fewer false positives after, the nodules kept
    real = report["held_out"]["real"]
    assert real["fp_per_scan_after"] < 0.2 * real["fp_per_scan_before"]
    assert "nc" in model.metadata["data_split"]["not_trained_on"]
    assert "nc" not in model.metadata["data_split"]["train_cases"]


class _TruthSegmenter:
    """Stands in for the U-Net: the phantom's true nodules and its vessel look-alikes as probability."""

    def __init__(self, phantom):
        self.p = phantom

    def iter_segment(self, ct):
        from types import SimpleNamespace

        prob = (self.p.labels > 0).astype(np.float32) * 0.9
        for z, y, x in np.asarray(self.p.distractors_zyx, int)[:5]:
            prob[max(z - 1, 0) : z + 2, max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3] = 0.6
        yield None
        return SimpleNamespace(probability=prob)


def test_phantom_table_labels_the_true_nodules(monkeypatch):
    from napari_lungkd.phantom import make_phantom

    seed = 5001
    phantom = make_phantom(seed, size=128, n_slices=80 + (seed % 5) * 20, n_nodules=3 + seed % 4)
    table = phantom_table(_TruthSegmenter(phantom), seed, size=128)
    assert table.n_references == len(phantom.nodules) > 0
    found = {int(j) for j in table.ref_hit if j >= 0}
    assert found == set(range(table.n_references))  # every true nodule is hit by its candidate
    assert (table.y == 0).sum() >= 1  # the vessel look-alikes are false positives
