"""Errors are seen: a failing job or napari flow shows one sentence and logs its traceback."""

from __future__ import annotations

import logging

import pytest

from napari_lungkd.errors import LidcXmlError
from napari_lungkd.progress import Progress

pytestmark = pytest.mark.gui


@pytest.fixture
def shown(monkeypatch):
    """The sentences the plugin shows with napari's show_error."""
    from napari_lungkd._napari._qt import workers

    messages = []
    monkeypatch.setattr(workers, "show_error", messages.append)
    return messages


def _failing(exc):
    yield Progress(0, 1, "load", "")
    raise exc


def test_a_bug_in_the_worker_is_one_sentence_and_a_logged_traceback(qtbot, shown, caplog):
    from napari_lungkd._napari._qt.workers import start_job

    ended, errors = [], []
    with caplog.at_level(logging.INFO, logger="napari_lungkd"):
        job = start_job(
            _failing(RuntimeError("the model fell over")),
            on_error=errors.append,
            on_end=ended.append,
        )
        qtbot.waitUntil(lambda: ended == [job], timeout=10_000)
    assert job.state == "failed"
    assert shown == ["RuntimeError: the model fell over"] == errors
    assert "Traceback" not in shown[0] and "\n" not in shown[0]
    (record,) = [r for r in caplog.records if r.name == "napari_lungkd"]
    assert record.levelno == logging.ERROR and record.exc_info[0] is RuntimeError
    assert "_failing" in caplog.text  # the worker's own frames are in the log


def test_bad_input_in_the_worker_is_its_own_sentence_logged_below_warning(qtbot, shown, caplog):
    from napari_lungkd._napari._qt.workers import start_job

    ended = []
    with caplog.at_level(logging.INFO, logger="napari_lungkd"):
        job = start_job(_failing(LidcXmlError("x.xml: not an LIDC read.")), on_end=ended.append)
        qtbot.waitUntil(lambda: ended == [job], timeout=10_000)
    assert shown == ["x.xml: not an LIDC read."]
    (record,) = [r for r in caplog.records if r.name == "napari_lungkd"]
    assert record.levelno == logging.INFO  # no traceback on the terminal for bad input


def test_a_failing_core_call_in_a_flow_is_one_sentence_and_a_logged_traceback(
    make_napari_viewer, shown, caplog, monkeypatch
):
    from napari.layers import Layer

    from napari_lungkd._napari._qt.widget import LungNodulesWidget
    from napari_lungkd._napari.layers import ct_layer_data
    from napari_lungkd._napari.session import Session
    from napari_lungkd.phantom import make_phantom

    viewer = make_napari_viewer()
    viewer.add_layer(Layer.create(*ct_layer_data(make_phantom(3, size=48, n_slices=8).to_ct())))
    widget = LungNodulesWidget(viewer)

    def broken(self):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(Session, "find_lidc_xml", broken)
    with caplog.at_level(logging.INFO, logger="napari_lungkd"):
        widget.lidc.find_for_ct()
    assert shown == ["OSError: [Errno 5] Input/output error"]
    (record,) = [r for r in caplog.records if r.name == "napari_lungkd"]
    assert record.levelno == logging.ERROR and "finding the LIDC XML" in record.getMessage()
    assert "Traceback" in caplog.text and "broken" in caplog.text
