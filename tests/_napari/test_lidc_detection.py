"""The LIDC tab's detection scores in the Qt-free Session (no display), on hand-built detections
with known answers: the phantom ``case`` (DICOM + LIDC XML, 4 readers, 3 nodules that LUNA16
counts) and a result whose nodules are the readers' 3 consensus nodules and one false mark."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_lungkd._napari.session import Session
from napari_lungkd.scoring.reference import lidc_truth

# the false mark scores between the first and the second nodule: known FROC (see the test)
SCORES = {"nodule 1": 0.9, "false mark": 0.8, "nodule 2": 0.7, "nodule 3": 0.6}


@pytest.fixture(scope="module")
def scored(case):
    """(session with LIDC loaded, the hand-built result)."""
    from tiny_models import tiny_model

    from napari_lungkd.inference import Segmenter
    from napari_lungkd.inference.fp_reduction import nodules_and_mask
    from napari_lungkd.progress import run_to_end

    ct, paths = case
    session = Session()
    session.set_ct(ct, "CT")
    session.load_lidc(paths["xml"])
    truth = lidc_truth(session.lidc)
    assert len(truth.references) == 3
    labels = truth.reference_labels
    mask = labels > 0
    probability = np.zeros(ct.hu.shape, np.float16)
    for k, ref in enumerate(truth.references):
        probability[labels == ref.label] = SCORES[f"nodule {k + 1}"]
    # a false mark far from every reader's outline and mark (they are all on slices 12-28)
    mask[3:5, 30:34, 100:104] = True
    probability[3:5, 30:34, 100:104] = SCORES["false mark"]
    run = run_to_end(Segmenter(tiny_model(), device="cpu", classifier="off").iter_segment(ct))
    nodules, labelled = nodules_and_mask(mask, ct, ct.hu, probability, 0.0)
    seg = replace(run, mask=labelled, nodules=nodules, probability=probability, triage=None)
    assert len(nodules) == 4
    session.add_result("student", ct, seg)
    session.lidc_comparison()
    return session, seg


def _rows(session) -> dict:
    return {r["quantity"]: r["value"] for r in session.lidc_rows() if r["model"] == "student"}


def test_sensitivities_cpm_and_counts_are_the_known_answers(scored):
    session, _ = scored
    (score,) = session.detection_scores()
    # pooled points (FP/scan, sensitivity): (0, 1/3) at 0.9, (1, 1/3) at 0.8, (1, 2/3), (1, 1)
    expected = [1 / 3, 1 / 3, 1 / 3, 1.0, 1.0, 1.0, 1.0]
    assert score.froc.sensitivities == pytest.approx(expected)
    assert score.froc.cpm == pytest.approx(5 / 7)
    assert (score.references, score.hits, score.misses, score.false_marks) == (3, 3, 0, 1)
    assert score.dice["mean_dice"] == pytest.approx(1.0)  # the readers' consensus itself
    rows = _rows(session)
    assert rows["sensitivity at 1/8 FP/scan"] == pytest.approx(1 / 3, abs=1e-4)
    assert rows["sensitivity at 1 FP/scan"] == 1.0 and rows["CPM (mean sensitivity)"] == 0.7143
    assert (rows["hits"], rows["misses"], rows["false marks"]) == (3, 0, 1)
    text = session.detection_text()
    assert "3 nodules to find" in text and "LUNA16 rule" in text
    assert "3 hits, 0 misses, 1 false mark" in text
    assert "sensitivity at 1/8 1/4 1/2 1 2 4 8 FP/scan: 0.33 0.33 0.33 1.00 1.00 1.00 1.00" in text
    assert "(CPM 0.71)" in text
    html = session.detection_text(html=True)  # as the LIDC tab shows it: a table, then counts
    assert "<b>1/8</b>" in html and "<b>CPM</b>" in html and ">&nbsp;0.71&nbsp;<" in html
    assert "student at U-Net max probability ≥ 0.500: 3 hits, 0 misses, 1 false mark" in html


def test_the_csv_carries_the_detection_scores(scored, tmp_path):
    import csv

    session, _ = scored
    rows = list(csv.DictReader(session.write_lidc_scores(tmp_path / "s.csv").open()))
    by_quantity = {r["quantity"]: r for r in rows if r["model"] == "student"}
    assert float(by_quantity["sensitivity at 1/2 FP/scan"]["value"]) == pytest.approx(1 / 3, 1e-3)
    assert by_quantity["false marks"]["value"] == "1" and by_quantity["hits"]["level"] == "0.5"


def test_counts_follow_the_operating_point_the_froc_does_not(scored):
    session, seg = scored
    try:
        session.set_operating_point("student", 0.75)  # nodule 1 and the false mark pass
        (score,) = session.detection_scores()
        assert (score.hits, score.misses, score.false_marks) == (1, 2, 1)
        assert score.froc.cpm == pytest.approx(5 / 7)  # over every candidate, whatever the point
        assert score.dice["found"] == 1 and score.dice["missed"] == 2
        session.set_operating_point("student", 0.85)
        rows = _rows(session)
        assert (rows["hits"], rows["misses"], rows["false marks"]) == (1, 2, 0)
        assert rows["operating point"] == 0.85
        assert "student at U-Net max probability ≥ 0.850: 1 hit, 2 misses, 0 false marks" in (
            session.detection_text()
        )
        assert len(session.results["student"].nodules) == 1
    finally:
        session.set_operating_point("student", 0.5)
    assert session.results["student"].mask is not None


def test_no_detection_scores_without_lidc_or_a_result(case, scored):
    ct, _ = case
    session = Session()
    session.set_ct(ct, "CT")
    session.load_lidc(scored[0].xml_path)
    assert session.detection_scores() == [] and session.detection_text() == ""
    session.add_result("student", ct, scored[1])
    session.clear_lidc()
    assert session.detection_scores() == [] and session.lidc_rows() == []
