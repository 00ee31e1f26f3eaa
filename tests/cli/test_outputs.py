"""Every command that writes checks its output paths first: exit 2, one line, in under 5 s, and no
model is built (issue 16, item 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from napari_lungkd.cli.main import main
from napari_lungkd.errors import ExportError
from napari_lungkd.files import check_output_dir, check_output_file

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


def _ct(tmp_path):
    import numpy as np
    import SimpleITK as sitk

    path = tmp_path / "chest.nii.gz"
    img = sitk.GetImageFromArray(np.full((4, 32, 32), -1000, np.int16))
    img.SetSpacing((0.8, 0.8, 2.5))
    sitk.WriteImage(img, str(path))
    return path


@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if any Segmenter is built (the check must come before the model)."""
    import napari_lungkd.inference as inference

    built = []

    class Refused(inference.Segmenter):
        def __init__(self, *args, **kwargs):
            built.append(args)
            raise AssertionError("a model was built before the output path was checked")

    monkeypatch.setattr(inference, "Segmenter", Refused)
    return built


def _bad_outputs(tmp_path):
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("mine")
    bad = {"proc": "/proc/lungkd-x", "file": str(a_file), "sys": "/sys/fs/lungkd-x"}
    if not ROOT_USER:  # root writes into a mode-555 folder anyway; /sys stands in for it then
        ro = tmp_path / "read_only"
        ro.mkdir()
        ro.chmod(0o555)
        bad["read_only"] = str(ro / "out")
    return bad


@pytest.mark.parametrize("command", ["segment", "evaluate"])
def test_unwritable_out_is_refused_in_one_line_before_any_model(
    tmp_path, capsys, no_model, command
):
    ct = _ct(tmp_path)
    for kind, out in _bad_outputs(tmp_path).items():
        t0 = time.perf_counter()
        rc = main([command, str(ct), "--weights", "random", "--device", "cpu", "--out", out])
        seconds = time.perf_counter() - t0
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2, kind
        assert len(err) == 1 and "--out" in err[0] and out in err[0], (kind, err)
        assert seconds < 5.0, (kind, seconds)
    assert no_model == []
    assert (tmp_path / "a_file.txt").read_text() == "mine"


def test_unwritable_json_masks_and_phantom_out_are_refused(tmp_path, capsys, no_model):
    ct = _ct(tmp_path)
    argv = ["segment", str(ct), "--weights", "random", "--out", str(tmp_path / "o")]
    assert main(argv + ["--json", "/proc/lungkd-x/s.json"]) == 2
    assert main(argv + ["--json", str(tmp_path)]) == 2  # a folder is not a JSON file
    assert main(["phantom", "--out", "/proc/lungkd-x", "--size", "32"]) == 2
    assert main(["lidc", "x.xml", "--ct", str(ct), "--masks", "/proc/lungkd-x/m.nii.gz"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4 and all(ln.startswith("lungkd ") for ln in lines)
    assert "--json" in lines[0] and "is a folder" in lines[1]
    assert "--out /proc/lungkd-x" in lines[2] and "--masks" in lines[3]
    assert no_model == [] and not (tmp_path / "o").exists()


def test_weights_install_checks_the_weights_folder_first(tmp_path, capsys, monkeypatch):
    import napari_lungkd.models.weights as weights

    target = tmp_path / "file_not_folder"
    target.write_text("x")
    monkeypatch.setenv("LUNGKD_WEIGHTS_DIR", str(target))
    copied = []
    monkeypatch.setattr(weights, "install", lambda *a, **k: copied.append(a))
    assert main(["weights", "install", str(tmp_path / "w.safetensors")]) == 2
    assert "weights folder" in capsys.readouterr().err and copied == []


def test_segment_with_out_in_proc_exits_2_in_under_5_s_as_a_process(tmp_path):
    ct = _ct(tmp_path)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "napari_lungkd.cli.main", "segment", str(ct), "--out", "/proc/x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    seconds = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "--out /proc/x cannot be written" in proc.stderr
    assert seconds < 5.0


def test_check_output_helpers_create_nothing(tmp_path):
    deep = tmp_path / "a" / "b"
    assert check_output_dir(deep) == deep and not (tmp_path / "a").exists()
    assert check_output_file(deep / "r.json") == deep / "r.json"
    with pytest.raises(ExportError, match="is a file"):
        check_output_dir(tmp_path / "x.txt") if (tmp_path / "x.txt").write_text("1") else None
    with pytest.raises(ExportError, match="cannot be made"):
        check_output_dir(tmp_path / "x.txt" / "sub")
    with pytest.raises(ExportError, match="cannot be written"):
        check_output_file("/proc/lungkd-x/r.json")
    assert list(tmp_path.iterdir()) == [tmp_path / "x.txt"]


def test_every_command_that_writes_a_file_offers_overwrite():
    # an existing output file is refused unless --overwrite is given: the flag must exist to be given
    from napari_lungkd.cli.main import build_parser

    def leaves(parser):
        subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not subs:
            yield parser
        for sub in subs:
            for child in sub.choices.values():
                yield from leaves(child)

    for p in leaves(build_parser()):
        opts = p._option_string_actions
        if any(o in opts for o in ("--json", "--masks", "--screenshot")):
            assert "--overwrite" in opts, p.prog


def test_segment_onto_a_full_disk_exits_2_in_one_line_and_leaves_no_short_file(
    tmp_path, capsys, monkeypatch
):
    # issue 17, item 1: SimpleITK does not report ENOSPC; the mask is read back before the rename
    import SimpleITK as sitk
    from full_disk import fill, small_disk
    from tiny_models import SPACING_MM, synthetic_ct
    from tiny_segmenter import use_tiny_models

    use_tiny_models(monkeypatch)
    ct = tmp_path / "chest.nii.gz"
    img = sitk.GetImageFromArray(synthetic_ct().hu)
    img.SetSpacing(tuple(float(s) for s in SPACING_MM[::-1]))
    sitk.WriteImage(img, str(ct))
    with small_disk(tmp_path / "disk", size_kib=512) as disk:
        filler = fill(disk, leave_bytes=0)
        out = disk / "out"
        argv = ["segment", str(ct), "--device", "cpu", "--classifier", "off", "--out", str(out)]
        rc = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2
        assert len(err) == 1 and "could not be written completely (disk full?)" in err[0], err
        assert str(out) in err[0]
        written = [p for p in disk.rglob("*") if p.is_file() and p != filler]
        assert written == []  # no mask, sidecar, table, report or temporary file, short or not
        # room for the mask but not for the rest: the mask made in this run is taken back
        filler.unlink()
        fill(disk, leave_bytes=6 * 1024)
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "disk full?" in err[0], err
        assert [p for p in disk.rglob("*") if p.is_file() and p.name != "filler"] == []
