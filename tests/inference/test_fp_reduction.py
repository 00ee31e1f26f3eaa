"""The second stage inside the Segmenter: candidates scored, the operating point applied, one
nodule definition for the table, the labelled mask and the provenance."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_classifier import ct_with_a_vessel, write_tiny_classifier, write_tiny_cnn_classifier
from tiny_models import synthetic_ct, tiny_model

from napari_lungkd.errors import ModelError, WeightsError
from napari_lungkd.inference import Segmenter
from napari_lungkd.inference.nodules import COLUMNS, nodules_to_rows
from napari_lungkd.progress import run_to_end


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory):
    """A classifier that calls blob-like candidates nodules and tube-like ones vessels."""
    pytest.importorskip("sklearn.ensemble")
    return write_tiny_classifier(
        tmp_path_factory.mktemp("fp") / "tiny_fp.safetensors",
        [{"fp_per_scan": 1.0, "sensitivity": 0.9, "threshold": 0.5}],
    )


def test_without_a_classifier_the_mask_components_are_the_nodules():
    seg = run_to_end(
        Segmenter(tiny_model(), device="cpu", classifier="off").iter_segment(ct_with_a_vessel())
    )
    assert seg.triage is None and seg.provenance.classifier is None
    assert len(seg.nodules) == 2  # the ball and the vessel
    assert set(np.unique(seg.mask)) == {0, 1, 2}


def test_the_classifier_drops_the_vessel_and_keeps_the_nodule(classifier_file):
    ct = ct_with_a_vessel()
    seg = run_to_end(
        Segmenter(tiny_model(), device="cpu", classifier=str(classifier_file)).iter_segment(ct)
    )
    assert len(seg.triage.candidates) == 2
    assert len(seg.nodules) == 1
    nod = seg.nodules[0]
    ball = synthetic_ct(n_slices=12).hu == 120
    assert seg.mask[ball].min() == 1 and (seg.mask > 0).sum() == ball.sum()
    assert nod.score is not None and nod.score >= 0.5
    assert (
        seg.provenance.classifier["n_candidates"] == 2 and seg.provenance.classifier["n_kept"] == 1
    )
    assert (
        seg.provenance.classifier["sha256"] and seg.provenance.classifier["operating_point"] == 0.5
    )
    assert seg.provenance.classifier["expected_at_operating_point"]["fp_per_scan"] == 1.0
    row = nodules_to_rows(seg.nodules)[0]
    assert "score" in COLUMNS and row["score"] == round(nod.score, 4)
    assert seg.timings.candidates > 0


def test_operating_point_zero_keeps_every_candidate_best_score_first(classifier_file):
    seg = run_to_end(
        Segmenter(
            tiny_model(), device="cpu", classifier=str(classifier_file), operating_point=0.0
        ).iter_segment(ct_with_a_vessel())
    )
    assert len(seg.nodules) == 2
    scores = [n.score for n in seg.nodules]
    assert scores == sorted(scores, reverse=True)
    for i, nod in enumerate(seg.nodules, start=1):  # label i is row i
        z, y, x = (int(round(c)) for c in nod.centroid_zyx)
        z0, y0, x0, z1, y1, x1 = nod.bbox
        assert (seg.mask[z0:z1, y0:y1, x0:x1] == i).sum() == nod.n_voxels


def test_bad_classifier_settings_are_one_sentence(tmp_path):
    with pytest.raises(ModelError, match="operating_point must lie in"):
        Segmenter(tiny_model(), device="cpu", operating_point=1.5)
    seg = Segmenter(tiny_model(), device="cpu", classifier=str(tmp_path / "none.safetensors"))
    with pytest.raises(WeightsError, match="does not exist"):
        run_to_end(seg.iter_segment(ct_with_a_vessel()))


def test_a_3d_cnn_classifier_file_is_the_second_stage_too(tmp_path):
    """A cnn3d file given as the classifier scores each candidate's 3-D patch: the ball stays,
    the tube goes, and the provenance names the kind."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    path = write_tiny_cnn_classifier(tmp_path / "cnn_fp.safetensors")
    seg = run_to_end(
        Segmenter(tiny_model(), device="cpu", classifier=str(path)).iter_segment(ct_with_a_vessel())
    )
    assert len(seg.triage.candidates) == 2
    assert seg.provenance.classifier["kind"] == "cnn3d"
    assert seg.provenance.classifier["n_kept"] == 1 and len(seg.nodules) == 1
    ball = synthetic_ct(n_slices=12).hu == 120
    assert seg.mask[ball].min() == 1 and (seg.mask > 0).sum() == ball.sum()
    scores = sorted(seg.triage.scores)
    assert scores[0] < 0.5 <= scores[1]
    from napari_lungkd.inference.fp_reduction import describe_classifier, load_classifier

    line = describe_classifier(load_classifier("student", str(path)))
    assert line.startswith("3-D CNN (baseline) cnn_fp.safetensors ")
    assert "operating point 0.500 (~1 false positive per scan, sensitivity 0.90" in line
