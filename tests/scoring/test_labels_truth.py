"""References from a label volume: nodules, small ones and a host's own lesion as irrelevant."""

import numpy as np

from napari_lungkd.scoring.detections import labels_truth
from napari_lungkd.scoring.hits import ScoredCandidate, score_scan


def _ball(shape, centre, r):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= r * r


def test_a_candidate_on_the_hosts_lesion_is_neither_hit_nor_false_positive():
    shape = (40, 60, 60)
    labels = np.zeros(shape, np.uint16)
    labels[_ball(shape, (10, 15, 15), 4)] = 1  # 1 mm voxels: a ~8 mm nodule
    labels[_ball(shape, (30, 45, 45), 1)] = 2  # ~2 mm: too small to be a reference
    ignore = _ball(shape, (20, 45, 15), 5)  # the host's own tumour
    truth = labels_truth(labels, (1.0, 1.0, 1.0), ignore=ignore, source="t")
    assert len(truth.references) == 1 and 7.0 < truth.references[0].diameter_mm < 9.5
    assert sorted(f.kind for f in truth.irrelevant) == ["host_lesion", "small_nodule"]
    cands = (
        ScoredCandidate((10.0, 15.0, 15.0), 0.9),  # on the nodule: a hit
        ScoredCandidate((20.0, 45.0, 15.0), 0.8),  # on the host's lesion: ignored
        ScoredCandidate((30.0, 10.0, 50.0), 0.7),  # on nothing: a false positive
    )
    score = score_scan(truth.case(cands))
    assert score.reference_scores == (0.9,)
    assert score.false_positive_scores == (0.7,)
    assert score.n_ignored == 1


def test_known_diameters_win_over_the_volume():
    shape = (20, 20, 20)
    labels = np.zeros(shape, np.uint16)
    labels[_ball(shape, (10, 10, 10), 1)] = 3  # a 2 mm blob that the facts call 6 mm
    truth = labels_truth(labels, (1.0, 1.0, 1.0), diameters={3: 6.0})
    assert [r.diameter_mm for r in truth.references] == [6.0] and truth.irrelevant == ()
