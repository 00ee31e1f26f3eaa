"""``lungkd demo``: the sample case opens with the widget docked, with or without weights."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.gui


def test_demo_without_weights_says_so_and_still_shows_the_sample(
    make_napari_viewer, tmp_path, monkeypatch, capsys
):
    from napari.utils.notifications import notification_manager

    from napari_lungkd._napari._qt.demo_viewer import open_demo

    monkeypatch.setenv("LUNGKD_WEIGHTS_DIR", str(tmp_path / "no-weights-here"))
    monkeypatch.setattr("napari_lungkd.models.weights.BUNDLED_DIR", tmp_path / "no-bundle")
    messages = []
    notification_manager.notification_ready.connect(lambda n: messages.append(str(n.message)))
    viewer = make_napari_viewer()
    widget, problem = open_demo(viewer, "student")
    assert problem is not None and "student" in problem and "\n" not in problem
    assert problem in capsys.readouterr().err.splitlines()  # one line on stderr
    assert any(problem in m for m in messages)
    from napari_lungkd._napari._qt.widget import LungNodulesWidget

    assert isinstance(widget, LungNodulesWidget)  # docked through the npe2 manifest
    assert widget.ct() is not None  # the sample CT is there and chosen in the widget
    assert widget.job is None and widget.layer("mask", "student") is None


@pytest.mark.slow
def test_demo_command_opens_napari_and_takes_a_screenshot(tmp_path):
    png = tmp_path / "demo.png"
    env = dict(os.environ, LUNGKD_WEIGHTS_DIR=str(tmp_path / "none"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_lungkd.cli.main",
            "demo",
            "--no-segment",
            "--screenshot",
            str(png),
            "--quit-after-screenshot",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert png.is_file() and png.stat().st_size > 10_000


def test_demo_with_weights_starts_the_student_on_the_sample(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    from napari_lungkd._napari._qt.demo_viewer import open_demo
    from napari_lungkd._napari.torch_guard import guard_triton

    guard_triton()  # the previous test's viewer loaded Mesa's LLVM into this process
    from napari_lungkd.models.specs import build_model, get_spec
    from napari_lungkd.models.weights import save_weights

    spec = get_spec("student")
    save_weights(
        tmp_path / "student.safetensors", build_model(spec).state_dict(), spec, metadata={}
    )
    monkeypatch.setenv("LUNGKD_WEIGHTS_DIR", str(tmp_path))
    viewer = make_napari_viewer()
    widget, problem = open_demo(viewer, "student", device="cpu")
    assert problem is None
    job = widget.job
    assert job is not None and job.is_running  # the student runs on the sample in a worker
    widget.cancel()  # the full-size sample takes minutes on this CPU: stop it
    qtbot.waitUntil(lambda: widget.job is None, timeout=120_000)
    assert job.state == "cancelled" and widget.layer("mask", "student") is None
