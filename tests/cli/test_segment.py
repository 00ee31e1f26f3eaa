"""`lungkd segment` / `lungkd evaluate` end to end on tiny NIfTI CTs with a random-weight student."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from napari_lungkd.cli.main import main

SPACING_XYZ = (0.8, 0.8, 2.5)
ORIGIN_XYZ = (-38.4, -20.0, -100.0)


def write_ct(path, seed=0):
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    hu = np.full((6, 96, 96), -1000, np.int16)
    yy, xx = np.mgrid[:96, :96]
    hu[:, ((yy - 48) / 40) ** 2 + ((xx - 48) / 44) ** 2 < 1] = 40
    for cx in (30, 66):
        hu[:, ((yy - 48) / 25) ** 2 + ((xx - cx) / 12) ** 2 < 1] = -850
    hu[2:4, 44:52, 62:70] = 100
    hu += rng.integers(-5, 5, hu.shape, dtype=np.int16)
    img = sitk.GetImageFromArray(hu)
    img.SetSpacing(SPACING_XYZ)
    img.SetOrigin(ORIGIN_XYZ)
    sitk.WriteImage(img, str(path))
    return hu


def test_segment_single_ct_writes_mask_csv_and_report_in_ct_geometry(tmp_path):
    import SimpleITK as sitk

    ct_path = tmp_path / "chest.nii.gz"
    write_ct(ct_path)
    out = tmp_path / "out"
    summary = tmp_path / "summary.json"
    rc = main(
        [
            "segment",
            str(ct_path),
            "--weights",
            "random",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--json",
            str(summary),
        ]
    )
    assert rc == 0
    case_dir = out / "chest"
    mask_img = sitk.ReadImage(str(case_dir / "student_mask.nii.gz"))
    ct_img = sitk.ReadImage(str(ct_path))
    assert mask_img.GetSize() == ct_img.GetSize()
    np.testing.assert_allclose(mask_img.GetSpacing(), ct_img.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(mask_img.GetOrigin(), ct_img.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(mask_img.GetDirection(), ct_img.GetDirection(), atol=1e-6)
    mask = sitk.GetArrayFromImage(mask_img)
    report = json.loads((case_dir / "report.json").read_text())
    student = report["models"]["student"]
    assert student["provenance"]["weights_sha256"] == "random-init (testing)"
    assert student["mask_voxels"] == int(np.count_nonzero(mask))
    rows = list(csv.DictReader((case_dir / "student_nodules.csv").open()))
    assert len(rows) == student["n_nodules"] >= 1
    # labelled: label i is row i of the CSV (its voxel count), nothing else in the mask
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == set(range(len(rows) + 1))
    for row in rows:
        assert int(row["n_voxels"]) == int((mask == int(row["label"])).sum())
    assert "random weights" in student["weights"]
    assert json.loads(summary.read_text())["cases"][0]["case"] == "chest"
    # a second run does not overwrite the masks unless asked
    assert (
        main(["segment", str(ct_path), "--weights", "random", "--device", "cpu", "--out", str(out)])
        == 2
    )
    assert (
        main(
            [
                "segment",
                str(ct_path),
                "--weights",
                "random",
                "--device",
                "cpu",
                "--out",
                str(out),
                "--overwrite",
            ]
        )
        == 0
    )


def test_segment_batch_folder_one_line_per_case_and_bad_case_reported(tmp_path, capsys):
    cases = tmp_path / "cases"
    (cases / "a").mkdir(parents=True)
    write_ct(cases / "a" / "one.nii.gz", seed=1)
    write_ct(cases / "two.nrrd", seed=2)
    (cases / "broken.nii.gz").write_bytes(b"not an image")
    rc = main(
        [
            "segment",
            str(cases),
            "--weights",
            "random",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "o"),
            "--json",
            str(tmp_path / "s.json"),
        ]
    )
    assert rc == 2  # one case failed, the others were done
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[")]
    assert len(lines) == 2 and all("student" in ln for ln in lines)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert sorted(c["case"] for c in summary["cases"]) == ["a_one", "two"]
    assert "broken" in summary["failures"][0]["case"]
    assert (tmp_path / "o" / "two" / "student_mask.nii.gz").is_file()


def test_segment_batch_builds_one_segmenter_and_reads_the_weights_once(tmp_path, monkeypatch):
    import napari_lungkd.inference as inference
    import napari_lungkd.models.weights as weights
    from napari_lungkd.models.specs import build_model, get_spec

    spec = get_spec("student")
    w = tmp_path / "student.safetensors"
    weights.save_weights(w, build_model(spec).state_dict(), spec, {"metrics": {}})
    cases = tmp_path / "cases"
    cases.mkdir()
    write_ct(cases / "one.nii.gz", seed=1)
    write_ct(cases / "two.nii.gz", seed=2)

    built, reads = [], []
    real_load = weights.load_weights

    class CountingSegmenter(inference.Segmenter):
        def __init__(self, *args, **kwargs):
            built.append(args[0])
            super().__init__(*args, **kwargs)

    def counting_load(*args, **kwargs):
        reads.append(args[0])
        return real_load(*args, **kwargs)

    monkeypatch.setattr(inference, "Segmenter", CountingSegmenter)
    monkeypatch.setattr(weights, "load_weights", counting_load)
    argv = ["segment", str(cases), "--weights", str(w), "--device", "cpu", "--threads", "1"]
    assert main(argv + ["--out", str(tmp_path / "o"), "--json", str(tmp_path / "s.json")]) == 0
    assert built == ["student"] and len(reads) == 1
    reports = json.loads((tmp_path / "s.json").read_text())["cases"]
    assert len(reports) == 2
    loads = sorted(r["models"]["student"]["timings"]["load"] for r in reports)
    assert loads[0] == 0.0 and loads[1] > 0  # the one load is reported once, by the first case


def test_segment_refuses_missing_input_and_missing_device(tmp_path, capsys):
    assert main(["segment", str(tmp_path / "nope"), "--weights", "random"]) == 2
    assert "does not exist" in capsys.readouterr().err
    ct_path = tmp_path / "c.nii.gz"
    write_ct(ct_path)
    from napari_lungkd.inference.torch_runner import available_devices

    if "cuda" not in available_devices():
        assert (
            main(
                [
                    "segment",
                    str(ct_path),
                    "--weights",
                    "random",
                    "--device",
                    "cuda",
                    "--out",
                    str(tmp_path / "o"),
                ]
            )
            == 2
        )
        assert "not available" in capsys.readouterr().err


@pytest.mark.slow
def test_segment_both_models_reports_comparison(tmp_path):
    ct_path = tmp_path / "c.nii.gz"
    write_ct(ct_path)
    rc = main(
        [
            "segment",
            str(ct_path),
            "--model",
            "both",
            "--weights",
            "random",
            "--teacher-weights",
            "random",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 0
    report = json.loads((tmp_path / "o" / "c" / "report.json").read_text())
    assert set(report["models"]) == {"student", "teacher"}
    assert report["models"]["teacher"]["provenance"]["prepared_reused"] is True
    assert 0.0 <= report["comparison"]["dice_student_teacher"] <= 1.0
    assert report["comparison"]["parameters"]["teacher"] == 67_150_609
    # the speed-up written is the one definition (model seconds per slice), from the timings written
    from napari_lungkd.inference import Timings
    from napari_lungkd.scoring.speed import speedup

    def timings(model):
        t = dict(report["models"][model]["timings"])
        t.pop("end_to_end_s")
        return Timings(**t)

    assert report["comparison"]["speedup_model"] == pytest.approx(
        speedup(timings("teacher"), timings("student"))
    )


def test_evaluate_scores_against_the_lidc_consensus_of_a_phantom(tmp_path):
    from napari_lungkd.phantom import make_phantom, write_case

    phantom = make_phantom(seed=3, size=128, n_slices=40, n_nodules=2)
    paths = write_case(phantom, tmp_path / "case", n_readers=3)
    out_json = tmp_path / "eval.json"
    rc = main(
        [
            "evaluate",
            str(paths["series_dir"]),
            "--lidc",
            str(paths["xml"]),
            "--weights",
            "random",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "o"),
            "--json",
            str(out_json),
        ]
    )
    assert rc == 0
    report = json.loads(out_json.read_text())
    s = report["scores"]["student"]
    assert 0.0 <= s["dice"] <= 1.0
    les = s["lesions"]
    assert les["tp"] + les["fn"] == report["lidc"]["n_nodules"] >= 1
    assert report["lidc"]["n_readers"] == 3
    assert report["models"]["student"]["provenance"]["weights_sha256"] == "random-init (testing)"


def test_evaluate_without_any_xml_is_refused(tmp_path, capsys):
    ct_path = tmp_path / "c.nii.gz"
    write_ct(ct_path)
    assert (
        main(
            [
                "evaluate",
                str(ct_path),
                "--weights",
                "random",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "No LIDC XML" in capsys.readouterr().err


def test_operating_point_and_classifier_reach_the_segmenter_and_bad_values_are_one_line(
    tmp_path, monkeypatch, capsys
):
    import napari_lungkd.inference as inference

    seen = {}
    ct_path = tmp_path / "ct.nii.gz"
    write_ct(ct_path)
    from napari_lungkd.errors import ModelError

    def record(model, weights=None, settings=None, **kw):
        seen[model] = settings
        raise ModelError("recorded")

    monkeypatch.setattr(inference, "Segmenter", record)
    code = main(
        [
            "segment",
            str(ct_path),
            "--operating-point",
            "0.25",
            "--classifier",
            "off",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert (
        code == 2
        and seen["student"].operating_point == 0.25
        and seen["student"].classifier == "off"
    )
    monkeypatch.undo()
    capsys.readouterr()
    code = main(
        ["segment", str(ct_path), "--operating-point", "1.5", "--out", str(tmp_path / "o2")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "operating_point must lie in [0, 1]" in err[0]


def test_batch_inputs_that_map_to_one_case_folder_get_their_own(tmp_path, monkeypatch):
    # issue 17, item 1: "a b", "a_b" and "A_B" all name the folder a_b (the last one only on a
    # case-insensitive file system); in one run they must not overwrite each other
    from tiny_segmenter import use_tiny_models

    use_tiny_models(monkeypatch)
    cases = tmp_path / "cases"
    cases.mkdir()
    names = ["a b.nii.gz", "a_b.nii.gz", "A_B.nii.gz"]
    for seed, name in enumerate(names):
        write_ct(cases / name, seed=seed)
    out, summary = tmp_path / "o", tmp_path / "s.json"
    argv = ["segment", str(cases), "--device", "cpu", "--classifier", "off"]
    assert main([*argv, "--out", str(out), "--json", str(summary)]) == 0
    folders = sorted(p.name.casefold() for p in out.iterdir())
    assert folders == ["a_b", "a_b-2", "a_b-3"]
    sources = set()
    for folder in out.iterdir():
        report = json.loads((folder / "report.json").read_text())
        sources.add(report["ct"]["source"])
        assert (folder / "student_mask.nii.gz").is_file()
    assert sources == {str(cases / n) for n in names}
    assert sorted(c["case"].casefold() for c in json.loads(summary.read_text())["cases"]) == folders
