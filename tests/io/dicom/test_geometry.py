"""order_frames on hand-made Frames: the orientation vote and a lone slice without orientation."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_lungkd.io.dicom.geometry import GeometryError, order_frames
from napari_lungkd.io.dicom.header import Frame

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _frame(name: str, z: float, iop=AXIAL) -> Frame:
    return Frame(Path(name), None, name, None, (0.0, 0.0, z), iop, (0.7, 0.7), 1.0, 0.0)


def test_slices_of_another_orientation_are_left_out_with_a_warning():
    frames = [
        _frame("1.dcm", 0.0),
        _frame("scout.dcm", 5.0, (0, 1, 0, 0, 0, -1)),
        _frame("2.dcm", 2.5),
    ]
    ordered = order_frames(frames)
    assert [f.path.name for f in ordered.frames] == ["1.dcm", "2.dcm"]
    assert ordered.spacing_mm == pytest.approx((2.5, 0.7, 0.7))
    assert any(
        w.startswith("left out 1 slice(s) whose orientation differs from the rest")
        and "scout.dcm" in w
        for w in ordered.warnings
    )


def test_a_lone_slice_without_orientation_is_kept_as_axial():
    ordered = order_frames([_frame("only.dcm", 3.0, iop=None)], z_spacing_hint_mm=2.0)
    assert len(ordered.frames) == 1
    assert "no ImageOrientationPatient: assumed axial orientation" in ordered.warnings
    assert ordered.origin_mm == (0.0, 0.0, 3.0)


def test_several_slices_without_orientation_are_refused():
    with pytest.raises(GeometryError, match="no ImageOrientationPatient"):
        order_frames([_frame("1.dcm", 0.0, iop=None), _frame("2.dcm", 2.5, iop=None)])
