"""The majority vote that drops stray DICOM files: ties, all equal, one odd item, missing keys."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from napari_lungkd.io.dicom.majority import drop_minority, most_common


def _items(*names: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(path=Path("/series") / n) for n in names]


def _what(key) -> str:
    return f"file(s) whose size differs from {key}"


def test_most_common_counts_and_gives_a_tie_to_the_first_seen():
    assert most_common(["b", "a", "a"]) == "a"
    assert most_common(["b", "a", "a", "b"]) == "b"
    assert most_common([None, None, 1]) is None  # None is a value like any other here


def test_all_equal_keeps_everything_without_a_warning():
    items = _items("1.dcm", "2.dcm", "3.dcm")
    kept, key, warning = drop_minority(items, [7, 7, 7], _what)
    assert kept == items and key == 7 and warning is None


def test_one_odd_item_is_left_out_and_named():
    items = _items("1.dcm", "scout.dcm", "2.dcm")
    kept, key, warning = drop_minority(items, ["a", "b", "a"], _what)
    assert kept == [items[0], items[2]] and key == "a"
    assert warning == "left out 1 file(s) whose size differs from a (e.g. scout.dcm)"


def test_a_tie_keeps_the_key_seen_first_and_counts_the_rest():
    items = _items("1.dcm", "2.dcm", "3.dcm", "4.dcm")
    kept, key, warning = drop_minority(
        items, ["x", "y", "y", "x"], _what, name=lambda i: i.path.stem
    )
    assert key == "x" and kept == [items[0], items[3]]
    assert warning == "left out 2 file(s) whose size differs from x (e.g. 2)"


def test_a_missing_key_never_wins_and_is_left_out():
    items = _items("1.dcm", "2.dcm", "3.dcm")
    kept, key, warning = drop_minority(items, [None, None, "z"], _what)
    assert key == "z" and kept == [items[2]]
    assert warning is not None and warning.startswith("left out 2 ") and "(e.g. 1.dcm)" in warning


def test_no_key_at_all_or_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        drop_minority(_items("1.dcm"), [None], _what)
    with pytest.raises(ValueError):
        drop_minority(_items("1.dcm"), [1, 2], _what)
