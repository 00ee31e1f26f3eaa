"""Driving the dock widget in tests: start a run and wait for its worker to end."""

from __future__ import annotations


def run_and_wait(qtbot, widget, model="student", timeout=120_000):
    widget.segment(model)
    assert widget.job is not None
    qtbot.waitUntil(lambda: widget.job is None, timeout=timeout)
    return widget.last_job


def panel_value(panel, quantity, model=None) -> float:
    """A number a panel's table shows (``1,234`` reads as 1234); the test fails if it is not shown."""
    text = panel.value(quantity, model)
    assert text is not None, f"{quantity} / {model} not shown"
    return float(text.replace(",", ""))
