"""The operating point set after the run, in the Qt-free Session (no display): how many nodules
each point keeps, with and without the false-positive classifier, and the user's edits carried."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tiny_classifier import ct_with_a_vessel, write_tiny_classifier
from tiny_models import SPACING_MM, synthetic_ct

from napari_lungkd._napari.operating_point import (
    CLASSIFIER_SCORE,
    PROBABILITY_SCORE,
    carry_edits,
    describe,
)
from napari_lungkd._napari.result_layers import EDIT_LABEL
from napari_lungkd._napari.session import Session
from napari_lungkd.errors import LungKDError
from napari_lungkd.inference import Segmenter
from napari_lungkd.progress import run_to_end


class GentleNet:
    """A one-convolution 'model' with a gentle slope: brighter blobs get a higher probability."""

    def __new__(cls):
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(1, 1, 1)
                with torch.no_grad():
                    self.conv.weight.fill_(20.0)
                    self.conv.bias.fill_(-20.0 * (70 + 1000) / 1400)

            def forward(self, x):
                return self.conv(x)

        return Net()


def three_blobs_ct():
    """The tiny CT with three balls of 120, 200 and 350 HU (max probabilities ~0.67/0.87/0.98)."""
    ct = synthetic_ct(n_slices=12)
    hu = ct.hu.copy()
    hu[hu == 120] = 40
    n, size = hu.shape[0], hu.shape[1]
    zz, yy, xx = np.mgrid[:n, :size, :size]
    for cy, cx, value in ((0.5, 0.69, 120), (0.4, 0.31, 200), (0.62, 0.31, 350)):
        ball = ((zz - n // 2) * SPACING_MM[0]) ** 2 + ((yy - cy * size) * 0.8) ** 2
        hu[ball + ((xx - cx * size) * 0.8) ** 2 < 4.0**2] = value
    return replace(ct, hu=hu)


def _segment(ct, model, **settings):
    from napari_lungkd.models.specs import get_spec

    return run_to_end(
        Segmenter((model, get_spec("student")), device="cpu", **settings).iter_segment(ct)
    )


@pytest.fixture(scope="module")
def plain():
    """(ct, result) of the gentle model without a classifier: three nodules."""
    ct = three_blobs_ct()
    seg = _segment(ct, GentleNet(), classifier="off", threshold=0.5)
    assert len(seg.nodules) == 3 and seg.triage is None
    return ct, seg


def test_without_a_classifier_the_point_filters_by_max_probability(plain):
    ct, own = plain
    session = Session()
    session.set_ct(ct, "CT")
    assert session.add_result("student", ct, own)
    scores = session.candidate_scores("student")
    assert scores.score_name == PROBABILITY_SCORE and len(scores) == 3
    assert scores.default == scores.lowest == pytest.approx(0.5)
    assert session.operating_point("student") == pytest.approx(0.5)
    probs = sorted(n.max_probability for n in own.nodules)
    assert probs[0] < 0.7 < probs[1] < 0.9 < probs[2] < 0.99

    for point, n_kept in ((0.7, 2), (0.9, 1), (0.99, 0), (0.8, 2), (0.6, 3), (0.5, 3)):
        seg = session.set_operating_point("student", point)
        assert seg is session.results["student"]
        assert len(seg.nodules) == n_kept, point
        # label i of the mask is row i of the table: the kept nodules, their voxels exactly
        assert sorted(np.unique(seg.mask[seg.mask > 0]).tolist()) == list(range(1, n_kept + 1))
        for nod in seg.nodules:
            assert nod.max_probability >= point
            assert int((seg.mask == nod.label).sum()) == nod.n_voxels
        kept_own = [n.label for n in own.nodules if n.max_probability >= point]
        assert np.array_equal(seg.mask > 0, np.isin(own.mask, kept_own))
        assert f"{n_kept} nodule" in session.summary()
    assert np.array_equal(session.results["student"].mask, own.mask)  # all back
    assert session.run_results["student"] is own  # the run's own result is never changed
    assert np.array_equal(own.mask > 0, np.isin(own.mask, [1, 2, 3]))

    # below the run's probability threshold there is nothing more: the point is clamped
    assert session.set_operating_point("student", 0.1) is None  # already at 0.5
    assert session.operating_point("student") == pytest.approx(0.5)
    # the same point twice changes nothing; a new run starts again at its own point
    assert session.set_operating_point("student", 0.9) is not None
    assert session.set_operating_point("student", 0.9) is None
    session.add_result("student", ct, own)
    assert session.operating_point("student") == pytest.approx(0.5)
    assert len(session.results["student"].nodules) == 3


def test_the_point_and_the_run_stay_with_their_patient(plain):
    ct, own = plain
    other = synthetic_ct(n_slices=6)
    session = Session()
    session.set_ct(ct, "A")
    session.add_result("student", ct, own)
    session.set_operating_point("student", 0.9)
    session.set_ct(other, "B")
    assert (
        session.candidate_scores("student") is None and session.operating_point("student") is None
    )
    with pytest.raises(LungKDError, match="Segment the CT with the student first"):
        session.set_operating_point("student", 0.7)
    assert session.operating_point("student", ct) == pytest.approx(0.9)  # kept aside with A
    session.set_ct(ct, "A")
    assert len(session.results["student"].nodules) == 1
    assert session.run_results["student"] is own
    prov = session.shown_provenance("student")
    assert prov["operating_point_shown"]["threshold"] == pytest.approx(0.9)
    assert prov["operating_point_shown"]["n_kept"] == 1
    assert prov["operating_point_shown"]["n_candidates"] == 3


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory):
    """A classifier that calls blob-like candidates nodules and tube-like ones vessels."""
    pytest.importorskip("sklearn.ensemble")
    return write_tiny_classifier(
        tmp_path_factory.mktemp("fp") / "tiny_fp.safetensors",
        [
            {"fp_per_scan": 4.0, "sensitivity": 0.95, "threshold": 0.2},
            {"fp_per_scan": 1.0, "sensitivity": 0.9, "threshold": 0.5},
        ],
    )


def test_with_the_classifier_the_point_filters_by_its_score(classifier_file):
    from tiny_models import HuThresholdNet

    ct = ct_with_a_vessel()
    own = _segment(ct, HuThresholdNet(), classifier=str(classifier_file))
    assert len(own.triage.candidates) == 2 and len(own.nodules) == 1  # the vessel dropped
    session = Session()
    session.set_ct(ct, "CT")
    session.add_result("student", ct, own)
    scores = session.candidate_scores("student")
    assert scores.score_name == CLASSIFIER_SCORE and scores.lowest == 0.0
    assert scores.default == pytest.approx(0.5) and len(scores) == 2
    low, high = sorted(scores.scores)
    assert low < 0.5 <= high

    seg = session.set_operating_point("student", 0.0)  # every candidate is a nodule
    assert len(seg.nodules) == 2 and set(np.unique(seg.mask)) == {0, 1, 2}
    assert [n.score for n in seg.nodules] == sorted(scores.scores, reverse=True)
    assert seg.provenance.classifier["operating_point"] == 0.0
    assert seg.provenance.classifier["n_kept"] == 2 and seg.triage.threshold == 0.0
    assert own.triage.threshold == pytest.approx(0.5)  # the run's own is left as it was
    seg = session.set_operating_point("student", min(high + 0.001, 1.0))
    assert len(seg.nodules) == (1 if high == 1.0 else 0) and seg.provenance.classifier[
        "n_kept"
    ] == len(seg.nodules)
    seg = session.set_operating_point("student", 0.5)
    assert len(seg.nodules) == 1 and np.array_equal(seg.mask, own.mask)
    line = describe(scores, 0.5, {"fp_per_scan": 1.0, "sensitivity": 0.9})
    assert line.startswith("1 of 2 candidates pass") and "≈1 FP/scan, sensitivity 0.90" in line


def test_edits_survive_a_new_point():
    own = np.zeros((1, 4, 6), np.uint8)
    own[0, :, 0:2] = 1  # nodule 1
    own[0, :, 4:6] = 2  # nodule 2
    shown = own.copy()
    shown[0, 0, 0] = 0  # erased by the user
    shown[0, 0, 3] = EDIT_LABEL  # painted by the user
    new = np.where(own == 2, 1, 0).astype(np.uint8)  # nodule 1 dropped, nodule 2 is now label 1
    out = carry_edits(shown, own, new)
    assert out[0, 0, 3] == EDIT_LABEL and out[0, 0, 0] == 0
    assert (out[0, :, 4:6] == 1).all() and (out[0, 1:, 0:2] == 0).all()
    assert np.array_equal(carry_edits(own, own, new), new)  # nothing edited: the new mask
