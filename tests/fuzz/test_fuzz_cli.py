"""The same hostile inputs through ``lungkd``: exit 2, one error line, no traceback, nothing written
and no file changed (in-process with capsys; one case in a real subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hostile_files import WEIGHTS_CASES, XML_CASES
from hostile_inputs import CT_CASES, chest, snapshot, write_image

from napari_lungkd.cli.main import main

SEGMENT = ["--weights", "random", "--device", "cpu"]
CT_NAMES = [
    "nifti-pixdim1-0.0",
    "mhd-data-file-etc-passwd",
    "dicom-rows-columns-65535",
    "dicom-slope-nan-every-slice",
    "nifti-uint8",  # not CT in HU: loads, but is not segmented
]


def _one_error_line(err: str, command: str) -> str:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"lungkd {command}: error: ")
    return lines[0]


def _case(cases, name):
    (case,) = [c for c in cases if c.name == name]
    return case


@pytest.mark.parametrize("name", CT_NAMES)
def test_segment_refuses_hostile_ct_with_one_line(tmp_path, capsys, name):
    case = _case(CT_CASES, name)
    path = case.build(tmp_path / "in")
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    assert (
        main(
            ["segment", str(path), *SEGMENT, "--out", str(out), "--json", str(tmp_path / "s.json")]
        )
        == 2
    )
    line = _one_error_line(capsys.readouterr().err, "segment")
    assert str(path) in line and (case.says in line or "Hounsfield" in line)
    assert snapshot(tmp_path) == before  # no mask, no report, no summary, input unchanged


@pytest.mark.parametrize("case", [c for c in XML_CASES if c.expect == "refuse"], ids=str)
def test_lidc_refuses_hostile_xml_with_one_line(tmp_path, capsys, case):
    path = case.build(tmp_path)
    before = snapshot(tmp_path)
    assert main(["lidc", str(path), "--json", str(tmp_path / "lidc.json")]) == 2
    line = _one_error_line(capsys.readouterr().err, "lidc")
    assert str(path) in line and case.says in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "name", ["weights-threshold-edited", "weights-pt-zip-bomb", "weights-nan-tensor"]
)
def test_weights_verify_refuses_hostile_files_with_one_line(tmp_path, capsys, name):
    case = _case(WEIGHTS_CASES, name)
    path = case.build(tmp_path)
    before = snapshot(tmp_path)
    assert main(["weights", "verify", str(path)]) == 2
    line = _one_error_line(capsys.readouterr().err, "weights")
    assert str(path) in line and case.says in line
    assert snapshot(tmp_path) == before


def _outputs(tmp: Path) -> dict[str, list[str]]:
    (tmp / "a_file").write_text("keep me")
    (tmp / "a_folder").mkdir()
    return {
        "out-in-proc": ["--out", "/proc/lungkd-fuzz/out"],
        "out-is-a-file": ["--out", str(tmp / "a_file")],
        "json-is-a-folder": ["--json", str(tmp / "a_folder")],
        "json-in-proc": ["--json", "/proc/lungkd-fuzz.json"],
        "json-under-a-file": ["--json", str(tmp / "a_file" / "x.json")],
    }


@pytest.mark.parametrize(
    "which",
    ["out-in-proc", "out-is-a-file", "json-is-a-folder", "json-in-proc", "json-under-a-file"],
)
def test_unwritable_outputs_are_refused_before_any_work(tmp_path, capsys, which):
    ct = write_image(tmp_path / "ct.nii.gz", chest())
    args = _outputs(tmp_path)[which]
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "out")]
    before = snapshot(tmp_path)
    assert main(["segment", str(ct), *SEGMENT, *args]) == 2
    _one_error_line(capsys.readouterr().err, "segment")
    assert snapshot(tmp_path) == before


def test_json_onto_the_input_is_refused(tmp_path, capsys):
    ct = write_image(tmp_path / "ct.nii.gz", chest())
    before = snapshot(tmp_path)
    rc = main(["segment", str(ct), *SEGMENT, "--out", str(tmp_path / "o"), "--json", str(ct)])
    assert rc == 2 and snapshot(tmp_path) == before
    # even with --overwrite: an input is never an output
    rc = main(
        [
            "segment",
            str(ct),
            *SEGMENT,
            "--out",
            str(tmp_path / "o"),
            "--json",
            str(ct),
            "--overwrite",
        ]
    )
    assert rc == 2 and snapshot(tmp_path) == before
    assert "is an input of this command" in capsys.readouterr().err


def test_an_existing_json_is_kept_without_overwrite(tmp_path, capsys):
    from lidc_xml_builders import two_reader_xml

    xml = tmp_path / "069.xml"
    xml.write_text(two_reader_xml())
    report = tmp_path / "report.json"
    report.write_text("{}")
    before = snapshot(tmp_path)
    assert main(["lidc", str(xml), "--json", str(report)]) == 2 and snapshot(tmp_path) == before
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(["lidc", str(xml), "--json", str(report), "--overwrite"]) == 0
    assert report.read_text() != "{}"


def test_a_real_process_prints_one_line_and_exits_2(tmp_path):
    from lidc_xml_builders import two_reader_xml

    case = _case(CT_CASES, "mhd-data-file-dev-zero")
    path = case.build(tmp_path)
    xml = tmp_path / "read.xml"
    xml.write_text(two_reader_xml())
    proc = subprocess.run(
        [sys.executable, "-m", "napari_lungkd.cli.main", "lidc", str(xml), "--ct", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc.stderr, "lidc")
    assert str(path) in line and "ElementDataFile" in line
