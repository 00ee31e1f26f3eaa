"""`lungkd evaluate FOLDER`: every case with a reference segmented and scored, the FROC pooled over
them, the plot, and the refusals (no reference anywhere; an existing --plot before any model)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from tiny_classifier import write_tiny_classifier
from tiny_models import HuThresholdNet

from napari_lungkd.cli.main import main

SEEDS = (4, 0)  # 2 nodules and 1 nodule, all solid and >= 3 mm (checked below)


def threshold_net(t_hu: float = -100.0, gain: float = 20.0):
    """One convolution whose probability passes 0.5 at ``t_hu`` and grows with HU: the mask's
    components get different scores (their highest probability)."""
    import torch

    net = HuThresholdNet()
    with torch.no_grad():
        net.conv.weight.fill_(gain)
        net.conv.bias.fill_(-gain * (t_hu + 1000) / 1400)
    return net


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two phantom cases as `lungkd phantom` writes them, and a CT without any reference."""
    import SimpleITK as sitk

    from napari_lungkd.phantom import make_phantom, write_case

    root = tmp_path_factory.mktemp("cases")
    phantoms = []
    for seed in SEEDS:
        p = make_phantom(seed=seed, size=128, n_slices=40, n_nodules=2)
        assert p.nodules and all(n.diameter_mm >= 3.0 for n in p.nodules)
        phantoms.append((p, write_case(p, root, n_readers=2)))
    img = sitk.GetImageFromArray(np.full((6, 64, 64), -1000, np.int16))
    img.SetSpacing((0.8, 0.8, 2.5))
    sitk.WriteImage(img, str(root / "no_reference.nii.gz"))
    return root, phantoms


@pytest.fixture
def tiny_segmenter(monkeypatch):
    """Every Segmenter the CLI builds runs the threshold net; the list counts how many were built."""
    import napari_lungkd.inference as inference
    from napari_lungkd.models.specs import get_spec

    real, built = inference.Segmenter, []

    def make(model="student", weights=None, settings=None, **kw):
        built.append(model)
        return real((threshold_net(), get_spec("student")), settings=settings, **kw)

    monkeypatch.setattr(inference, "Segmenter", make)
    return built


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory):
    """A small tree classifier over the candidate features (blob-like above tube-like)."""
    pytest.importorskip("sklearn.ensemble")
    return write_tiny_classifier(tmp_path_factory.mktemp("fp") / "tiny_fp.safetensors", max_iter=20)


def direct_froc(phantoms, classifier: str):
    """The pooled FROC computed without the CLI: each case segmented here, its candidates scored
    against the phantom's own labels and nodules."""
    from napari_lungkd.inference import Segmenter
    from napari_lungkd.io import load_ct
    from napari_lungkd.models.specs import get_spec
    from napari_lungkd.progress import run_to_end
    from napari_lungkd.scoring.froc import froc
    from napari_lungkd.scoring.hits import Reference, ScanCase, ScoredCandidate

    segmenter = Segmenter(
        (threshold_net(), get_spec("student")), device="cpu", classifier=classifier
    )
    scans = []
    for p, paths in phantoms:
        ct = load_ct(paths["series_dir"])
        assert ct.shape == p.labels.shape  # the truth is on the CT's grid as loaded
        seg = run_to_end(segmenter.iter_segment(ct))
        if seg.triage is not None:
            t = seg.triage
            cands = [
                ScoredCandidate(c.centroid_zyx, float(s), c.label)
                for c, s in zip(t.candidates.items, t.scores)
            ]
            labels = t.candidates.labels
        else:
            cands = [
                ScoredCandidate(n.centroid_zyx, n.max_probability, n.label) for n in seg.nodules
            ]
            labels = seg.mask
        refs = [Reference(n.centre_zyx, n.diameter_mm, n.label) for n in p.nodules]
        scans.append(ScanCase(ct.spacing_mm, cands, refs, (), labels, p.labels))
    return froc(scans, bootstrap=1000, seed=0), seg


@pytest.mark.parametrize("classifier", ["off", "file"])
def test_folder_pools_the_froc_of_its_cases_as_scoring_froc_does(
    folder, tiny_segmenter, classifier_file, tmp_path, capsys, classifier
):
    root, phantoms = folder
    clf = "off" if classifier == "off" else str(classifier_file)
    out_json, plot = tmp_path / "eval.json", tmp_path / "froc.png"
    argv = ["evaluate", str(root), "--device", "cpu", "--classifier", clf]
    rc = main(argv + ["--json", str(out_json), "--plot", str(plot)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert tiny_segmenter == ["student"]  # one model for the whole folder

    expected, last_seg = direct_froc(phantoms, clf)
    doc = json.loads(out_json.read_text())
    got = doc["froc"]["student"]
    assert got["scans"] == 2 and got["references"] == sum(len(p.nodules) for p, _ in phantoms)
    assert got["found"] == expected.n_found and got["false_positives"] == expected.n_false_positives
    assert got["sensitivity"] == pytest.approx(list(expected.sensitivities))
    assert got["cpm"] == pytest.approx(expected.cpm)
    b = expected.bootstrap
    assert (got["bootstrap"]["cpm_lower"], got["bootstrap"]["cpm_upper"]) == pytest.approx(
        (b.cpm_lower, b.cpm_upper)
    )
    op = None if last_seg.triage is None else last_seg.triage.threshold
    assert doc["operating_point"]["student"] == op
    dice = expected.dice_summary(op)
    assert got["dice"]["mean_dice"] == pytest.approx(expected.dice_summary()["mean_dice"])
    # the scores cover a range: the FROC sweeps something, and a nodule is found
    assert expected.n_found >= 1 and expected.n_false_positives >= 1

    # per case: the row, and its line on the terminal
    rows = {r["case"]: r for r in doc["cases"]}
    assert len(rows) == 2 and all(r["reference"] == "phantom truth" for r in rows.values())
    assert sum(r["models"]["student"]["found"] for r in rows.values()) == dice["found"]
    skipped = doc["skipped"]
    assert [s["path"].endswith("no_reference.nii.gz") for s in skipped] == [True]
    lines = printed.splitlines()
    assert sum("(phantom truth, " in ln and "false mark" in ln for ln in lines) == 2
    assert sum("skipped: no LIDC XML" in ln for ln in lines) == 1
    cpm_line = next(ln for ln in lines if ln.strip().startswith("CPM"))
    assert f"{expected.cpm:.3f}" in cpm_line and f"{b.cpm_lower:.3f}-{b.cpm_upper:.3f}" in cpm_line
    assert any(ln.strip().startswith("1/8 ") for ln in lines)
    mean = dice["mean_dice"]
    assert ("Dice of found nodules" in printed) and (mean is None or f"{mean:.3f}" in printed)

    # the plot is a PNG
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert doc["plot"] == str(plot)
    assert not math.isnan(got["cpm"])


def test_a_folder_without_any_reference_exits_2_in_one_sentence(tmp_path, capsys, tiny_segmenter):
    import SimpleITK as sitk

    for name in ("a.nii.gz", "b.nii.gz"):
        img = sitk.GetImageFromArray(np.full((6, 32, 32), -1000, np.int16))
        img.SetSpacing((0.8, 0.8, 2.5))
        sitk.WriteImage(img, str(tmp_path / name))
    out_json = tmp_path / "r.json"
    rc = main(["evaluate", str(tmp_path), "--device", "cpu", "--json", str(out_json)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "No CT under" in err[0] and "2 CTs skipped" in err[0]
    assert tiny_segmenter == [] and not out_json.exists()


def test_an_existing_plot_is_refused_before_any_model(folder, tmp_path, capsys, tiny_segmenter):
    root, _ = folder
    plot = tmp_path / "froc.png"
    plot.write_bytes(b"mine")
    rc = main(["evaluate", str(root), "--device", "cpu", "--plot", str(plot)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--plot" in err[0] and "already exists" in err[0]
    assert tiny_segmenter == [] and plot.read_bytes() == b"mine"
    rc = main(["evaluate", str(root), "--device", "cpu", "--plot", str(tmp_path / "froc.jpg")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "PNG" in err[0] and tiny_segmenter == []


def test_one_ct_stays_the_one_case_form(folder, tmp_path, capsys, tiny_segmenter):
    # a phantom case folder holds its series and its truth labels: still one CT, scored as before
    root, phantoms = folder
    out_json = tmp_path / "one.json"
    case_dir = phantoms[0][1]["case_dir"]
    argv = ["evaluate", str(case_dir), "--device", "cpu", "--out", str(tmp_path / "o")]
    assert main(argv + ["--json", str(out_json)]) == 0
    report = json.loads(out_json.read_text())
    assert "scores" in report and "lidc" in report and "froc" not in report
    assert "FROC" not in capsys.readouterr().out

    # a patient folder with the CT and a radiograph series is one CT too
    import shutil

    from dicom_factory import write_series

    patient = tmp_path / "patient"
    shutil.copytree(case_dir, patient)
    write_series(patient / "radiograph", n=1, rows=16, cols=16, modality="CR")
    argv = ["evaluate", str(patient), "--device", "cpu", "--out", str(tmp_path / "o2")]
    assert main(argv + ["--json", str(out_json), "--overwrite"]) == 0
    assert "froc" not in json.loads(out_json.read_text())
    # with --plot it is a set of one
    plot = tmp_path / "one.png"
    assert main(argv + ["--plot", str(plot), "--json", str(out_json), "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert "1 DICOM series of another modality left out" in printed and plot.is_file()
    assert json.loads(out_json.read_text())["froc"]["student"]["scans"] == 1
    # --lidc with --plot: the readers' XML given is the reference, not the phantom's truth
    paths = phantoms[0][1]
    argv = ["evaluate", str(paths["series_dir"]), "--device", "cpu", "--lidc", str(paths["xml"])]
    assert main(argv + ["--plot", str(plot), "--json", str(out_json), "--overwrite"]) == 0
    row = json.loads(out_json.read_text())["cases"][0]
    assert row["reference"] == "LIDC XML" and row["reference_file"] == str(paths["xml"])


def test_phantom_truth_keeps_nodules_under_3_mm_as_irrelevant_findings(folder, tmp_path):
    import shutil

    from napari_lungkd.io import load_ct
    from napari_lungkd.scoring.detections import find_phantom_truth, phantom_truth

    _, phantoms = folder
    p, paths = phantoms[0]  # two nodules
    case = tmp_path / "case"
    shutil.copytree(paths["case_dir"], case)
    facts = json.loads((case / "nodules.json").read_text())
    facts["nodules"][0]["diameter_mm"] = 2.5  # as if the first one were small
    (case / "nodules.json").write_text(json.dumps(facts))
    ct = load_ct(case / "series")
    truth_file = find_phantom_truth(case / "series")
    assert truth_file == case / "truth_labels.nii.gz"
    truth = phantom_truth(truth_file, ct)
    small = facts["nodules"][0]["label"]
    assert [f.kind for f in truth.irrelevant] == ["small_nodule"]
    assert len(truth.references) == len(p.nodules) - 1
    assert np.array_equal(truth.irrelevant_labels > 0, p.labels == small)
    assert np.array_equal(truth.reference_labels > 0, (p.labels > 0) & (p.labels != small))
    (case / "nodules.json").unlink()  # the truth labels alone are no phantom case
    assert find_phantom_truth(case / "series") is None


def test_ctrl_c_in_the_second_case_leaves_no_file(
    folder, tmp_path, capsys, monkeypatch, tiny_segmenter
):
    import napari_lungkd.cli.evaluate_folder as evaluate_folder

    real, calls = evaluate_folder.segment_case, []

    def interrupted(ct, segmenters, desc=""):
        calls.append(desc)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(ct, segmenters, desc)

    monkeypatch.setattr(evaluate_folder, "segment_case", interrupted)
    root, _ = folder
    out_json, plot = tmp_path / "r.json", tmp_path / "f.png"
    argv = ["evaluate", str(root), "--device", "cpu", "--classifier", "off"]
    rc = main(argv + ["--json", str(out_json), "--plot", str(plot)])
    assert rc == 130 and "cancelled" in capsys.readouterr().err
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []
