"""The dock widget's Qt-free Session, driven with no display: its rules, one by one.

Models run on the CPU with random weights on small phantoms (64 x 64, 16 slices); the LIDC part
uses the shared ``case`` (a 128 x 128 x 32 phantom written as DICOM + LIDC XML, 4 readers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_lungkd._napari.session import NoCtError, Session
from napari_lungkd.progress import run_to_end


@pytest.fixture(scope="module")
def cts():
    from napari_lungkd.phantom import make_phantom

    return [make_phantom(seed, size=64, n_slices=16).to_ct() for seed in (5, 10)]


@pytest.fixture
def built(monkeypatch):
    """Counts the Segmenters the session builds (the real class, spied on)."""
    import napari_lungkd.inference as inference

    made = []

    class CountingSegmenter(inference.Segmenter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(inference, "Segmenter", CountingSegmenter)
    return made


def _run(session, model, **controls):
    """Segment the session's CT with ``model`` to the end and keep the result (as the widget does)."""
    got_model, ct, seg = run_to_end(session.iter_segment(model, device="cpu", **controls))
    assert got_model == model and ct is session.ct
    assert session.add_result(model, ct, seg)
    return seg


def test_one_segmenter_per_model_reused_across_runs_and_cts(cts, built):
    session = Session(weights={"student": "random"})
    session.set_ct(cts[0], "CT 1")
    first = _run(session, "student")
    used = session.segmenter("student", session.run_settings("cpu"))
    session.set_ct(cts[1], "CT 2")
    second = _run(session, "student")
    assert len(built) == 1 and built[0] is used  # one object for both runs, both CTs
    assert session.segmenter("student", session.run_settings("cpu")) is used
    assert first.mask.shape == cts[0].hu.shape and second.mask.shape == cts[1].hu.shape

    # a setting that changes the run (threshold, device, engine) builds a new one
    _run(session, "student", threshold=0.3)
    assert len(built) == 2 and built[1] is not used
    assert built[1].settings.threshold == pytest.approx(0.3)
    _run(session, "student", threshold=0.3)
    assert len(built) == 2
    # so do other weights for the model (the Segmenter reads them on its first run)
    assert session.segmenter("student", built[1].settings) is built[1]
    session.weights["student"] = "/elsewhere/student.safetensors"
    assert session.segmenter("student", built[1].settings) is not built[1]
    assert len(built) == 3


def test_nothing_runs_until_the_generator_is_driven(cts, built):
    session = Session(weights={"student": "random"})
    with pytest.raises(NoCtError, match="Open a chest CT first"):
        session.iter_segment("student", device="cpu")
    session.set_ct(cts[0])
    gen = session.iter_segment("student", device="cpu")
    assert built == []  # the weights are read in the worker, where errors are reported
    gen.close()
    session.weights["student"] = "/nowhere/missing.safetensors"
    gen = session.iter_segment("student", device="cpu")
    from napari_lungkd.errors import LungKDError

    with pytest.raises(LungKDError, match="missing.safetensors"):
        run_to_end(gen)


def test_teacher_follows_student_reuses_its_input_and_survives_a_student_rerun(cts, built):
    session = Session(weights={"student": "random", "teacher": "random"})
    session.set_ct(cts[0], "CT 1")
    assert session.follow_up() is None  # the comparison is off
    assert session.set_compare(True) == "student"  # no student result yet: the student first
    student = _run(session, "student")
    assert session.follow_up() == "teacher"
    assert session.prepared_for("teacher") is student.prepared
    teacher = _run(session, "teacher")
    assert teacher.provenance.prepared_reused is True  # the student's lung crop and slices
    assert session.follow_up() is None
    assert list(session.ordered_results()) == ["student", "teacher"]
    comp = session.model_comparison()
    assert comp is not None and comp.dice_between is not None
    masks = {m: s.mask for m, s in session.results.items()}
    assert session.disagreement(masks).shape == cts[0].hu.shape

    # the student reruns (another threshold): the teacher's result is kept, nothing follows
    rerun = _run(session, "student", threshold=0.4)
    assert session.results["student"] is rerun and session.results["teacher"] is teacher
    assert session.follow_up() is None
    assert session.set_compare(True) is None  # both there: nothing to run

    # the comparison off drops the teacher; on again runs only the teacher
    assert session.set_compare(False) is None and "teacher" not in session.results
    assert session.set_compare(True) == "teacher"

    # a result for a CT that is no longer current is dropped; a new CT drops the results
    assert session.set_ct(cts[1], "CT 2") is True
    assert session.results == {} and session.ct_layer_name == "CT 2"
    assert session.add_result("teacher", cts[0], teacher) is False
    assert session.results == {}
    assert session.set_ct(cts[1], "CT 2") is False  # the same CT again changes nothing


def test_a_run_that_stops_without_the_teacher_turns_the_comparison_off(cts):
    session = Session()
    session.set_ct(cts[0])
    assert session.run_stopped() is False  # comparison off: nothing to undo
    session.set_compare(True)
    assert session.run_stopped() is True and session.compare_teacher is False


def _count_rasterising(monkeypatch) -> dict:
    """Count every read of the XML and every rasterised outline from here on."""
    from napari_lungkd.lidc import masks, parse, raster

    calls = {"parse": 0, "rasterise": 0, "fill": 0}

    def counting(module, name, key):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[key] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    counting(parse, "parse_lidc_xml", "parse")
    counting(raster, "rasterise_annotation", "rasterise")
    counting(raster, "fill_roi", "fill")
    counting(masks, "rasterise_read", "rasterise")
    counting(masks, "read_lidc_xml", "parse")
    return calls


def test_consensus_level_recomputes_only_the_consensus(case, monkeypatch):
    from napari_lungkd.lidc import annotate

    ct, paths = case
    session = Session()
    session.set_ct(ct, "CT")
    xml = session.find_lidc_xml()
    assert xml == paths["xml"]
    calls = _count_rasterising(monkeypatch)
    lidc = session.load_lidc(xml)
    assert calls["rasterise"] > 0 and calls["fill"] > 0  # the counters see the real work
    readers = session.reader_masks
    assert len(readers) == 4 and all(v.dtype == np.uint8 for v in readers.values())
    loose = session.consensus.copy()
    assert np.array_equal(loose, annotate(xml, ct, level=0.5).consensus_labels())

    for key in calls:
        calls[key] = 0
    assert session.set_level(1.0) is True
    strict = session.consensus
    assert calls == {"parse": 0, "rasterise": 0, "fill": 0}  # no re-reading, no re-rasterising
    assert session.lidc.annotations is lidc.annotations and session.reader_masks is readers
    assert 0 < int((strict > 0).sum()) < int((loose > 0).sum())  # stricter: fewer voxels
    monkeypatch.undo()
    expected = annotate(xml, ct, level=1.0)
    assert np.array_equal(strict, expected.consensus_labels())
    assert [n.to_dict() for n in session.lidc.nodules] == [n.to_dict() for n in expected.nodules]
    assert session.set_level(1.0) is False  # the same level: nothing to do
    assert session.set_level(0.5) is True
    assert np.array_equal(session.consensus, loose)

    # the scores use the consensus at the level; the CSV carries the XML and the level
    comp = session.lidc_comparison()
    assert comp is not None and session.lidc_rows()
    # another CT drops the annotations (they are on this CT's grid)
    session.set_ct(None)
    assert session.lidc is None and session.consensus is None and session.reader_masks == {}


def test_lidc_scores_csv_and_bad_xml(case, tmp_path):
    import csv

    from napari_lungkd.errors import LidcXmlError, LungKDError

    ct, paths = case
    session = Session()
    with pytest.raises(NoCtError):
        session.load_lidc(paths["xml"])
    session.set_ct(ct)
    with pytest.raises(LungKDError, match="Nothing to export"):
        session.write_lidc_scores(tmp_path / "none.csv")
    bad = tmp_path / "bad.xml"
    bad.write_text("<notLidc/>")
    with pytest.raises(LidcXmlError, match="bad.xml"):
        session.load_lidc(bad)
    assert session.lidc is None
    session.load_lidc(paths["xml"])
    session.set_level(0.75)
    session.lidc_comparison()
    out = session.write_lidc_scores(tmp_path / "scores.csv")
    rows = list(csv.DictReader(out.open()))
    assert rows and {r["level"] for r in rows} == {"0.75"}
    assert {r["xml"] for r in rows} == {paths["xml"].name}


def test_each_patient_keeps_its_own_results_and_annotations(cts, case):
    """Two patients in one window: results and LIDC belong to their CT; switching brings them
    back; a late result for the other patient is kept with it; a closed CT's result is dropped."""
    lidc_ct, paths = case
    session = Session(weights={"student": "random"})
    session.set_ct(cts[0], "A")
    a_seg = _run(session, "student")
    assert session.summary().startswith("done: ") and "student" in session.summary()
    session.set_ct(lidc_ct, "B")
    assert session.results == {} and session.lidc is None  # B starts clean ...
    session.load_lidc(paths["xml"])
    b_seg = _run(session, "student")
    assert session.set_ct(cts[0], "A") is True
    assert session.results == {"student": a_seg} and session.lidc is None  # ... A comes back
    assert session.results_of(lidc_ct) == {"student": b_seg}
    # a run on B that ends while A is shown is kept with B, not shown on A
    assert session.add_result("teacher", lidc_ct, b_seg) is False
    assert "teacher" not in session.results
    session.set_ct(lidc_ct, "B")
    assert set(session.results) == {"student", "teacher"}
    assert session.lidc is not None and session.xml_path == paths["xml"]  # its LIDC too
    # B's layer is closed: what was kept for it goes, and a late result for it is dropped
    session.set_ct(cts[0], "A")
    session.forget_ct(lidc_ct)
    assert not session.knows(lidc_ct) and session.results_of(lidc_ct) == {}
    assert session.add_result("student", lidc_ct, b_seg) is False
    assert session.results == {"student": a_seg}
    session.forget_ct(cts[0])
    assert session.ct is None and session.results == {}


def test_the_status_line_names_the_tables_model_first(cts):
    session = Session(weights={"student": "random", "teacher": "random"})
    session.set_ct(cts[0], "A")
    assert "not segmented" in session.summary()
    _run(session, "teacher")
    _run(session, "student")  # the student's result arrives last ...
    line = session.summary()
    assert session.table_model() == "student"  # ... and its nodules fill the table,
    assert line.index("student") < line.index("teacher")  # so its count comes first


def test_an_edit_changes_the_recomputed_dice(case):
    """Recompute scores with the mask as shown: an edit changes Dice vs the consensus and
    student vs teacher; the results' own masks are left as the model made them."""
    from napari_lungkd._napari.result_layers import EDIT_LABEL
    from napari_lungkd.scoring.metrics import dice

    ct, paths = case
    session = Session(weights={"student": "random", "teacher": "random"})
    session.set_ct(ct, "CT")
    session.load_lidc(paths["xml"])
    student = _run(session, "student")
    _run(session, "teacher")
    before_model, before_lidc = session.rescore({})
    own = student.mask.copy()
    # the false marks erased, the readers' nodule painted in by hand
    edited = np.where(session.consensus > 0, EDIT_LABEL, 0).astype(np.uint8)
    after_model, after_lidc = session.rescore({"student": edited})
    assert after_lidc.dice_vs_consensus["student"] == pytest.approx(
        dice(edited > 0, session.consensus > 0)
    )
    assert after_lidc.dice_vs_consensus["student"] == pytest.approx(1.0)
    assert before_lidc.dice_vs_consensus["student"] < 0.99
    assert after_model.dice_between != before_model.dice_between
    assert np.array_equal(student.mask, own)  # the model's result is not changed by the edit


def test_results_are_proposed_outside_the_source_folder(case, tmp_path, monkeypatch):
    from napari_lungkd._napari.save_paths import (
        RESULTS_ENV,
        default_mask_path,
        in_source_folder,
        results_root,
    )

    ct, paths = case
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    assert results_root() == Path.home() / "napari-lungkd-results"
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))
    proposed = default_mask_path(ct, "student_corrected")
    assert proposed.parent.parent == tmp_path / "results"
    assert ct.patient_id in proposed.name and ct.patient_id in proposed.parent.name
    assert proposed.name.endswith("_student_corrected.nii.gz")
    assert not in_source_folder(proposed, ct)
    series = Path(paths["series_dir"])
    assert in_source_folder(series / "mask.nii.gz", ct)
    assert in_source_folder(series / "sub" / "mask.nii.gz", ct)
    assert not in_source_folder(series.parent / "elsewhere" / "mask.nii.gz", ct)
