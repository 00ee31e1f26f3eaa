"""``lungkd phantom`` writes N cases and a JSON summary, and refuses bad arguments."""

from __future__ import annotations

import json

from napari_lungkd.cli.main import main


def test_phantom_command_writes_cases_and_json(tmp_path, capsys):
    out = tmp_path / "cases"
    rc = main(
        [
            "phantom",
            "--n-cases",
            "2",
            "--out",
            str(out),
            "--seed",
            "5",
            "--size",
            "64",
            "--n-slices",
            "10",
            "--n-readers",
            "2",
            "--json",
            str(tmp_path / "s.json"),
        ]
    )
    assert rc == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert [c["seed"] for c in summary["cases"]] == [5, 6]
    for case in summary["cases"]:
        series = out / case["patient_id"] / "series"
        assert len(list(series.glob("*.dcm"))) == 10
        assert (series / "reads.xml").is_file()
        facts = json.loads((out / case["patient_id"] / "nodules.json").read_text())
        assert len(facts["readers"]) == 2 and len(facts["nodules"]) == case["n_nodules"]
    assert summary["seconds_per_case"] > 0
    assert "wrote 2 case(s)" in capsys.readouterr().out


def test_phantom_command_refuses_zero_cases(tmp_path):
    import pytest

    with pytest.raises(SystemExit) as err:
        main(["phantom", "--n-cases", "0", "--out", str(tmp_path)])
    assert err.value.code not in (0, None)
