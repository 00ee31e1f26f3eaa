"""Student | teacher side by side (napari's grid view): both cells framed on the nodule.

napari >= 0.6.2 draws each grid cell in its own ViewBox with one linked camera, so ``camera.zoom``
is canvas pixels per mm *inside a cell*. The zoom chosen for the whole canvas (the nodule table's
jump) is wrong for a half-width cell; turning the grid on (or off) must frame the nodule again for
the new cell size. Fixtures (a small phantom, random-weight student and teacher) are in conftest.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_lungkd._napari._qt.nodule_table import nodule_world_box
from napari_lungkd._napari.framing import camera_of, cell_size_px, grid_of, view_size_mm
from napari_lungkd.inference.nodules import largest_section_z

pytestmark = pytest.mark.gui


def _assert_framed_on(viewer, nodule, ct_layer, what: str) -> None:
    """The camera is on the nodule, the nodule is neither tiny nor bigger than one cell, and one
    cell spans the context that the nodule table promises (~8x the nodule, >= 100 mm, <= half)."""
    centre, extent = nodule_world_box(nodule, ct_layer.scale, ct_layer.translate)
    camera = camera_of(viewer)
    cell = cell_size_px(viewer)  # (height, width) of one cell in canvas pixels
    box_px = extent[-2:] * camera.zoom
    assert np.allclose(camera.center[-2:], centre[-2:], atol=1e-3), what
    assert box_px.max() >= 0.03 * cell.min(), f"{what}: nodule {box_px} px in a {cell} px cell"
    assert np.all(box_px <= cell), f"{what}: nodule {box_px} px bigger than the {cell} px cell"
    world = np.asarray(viewer.layers.extent.world, dtype=float)
    expected_mm = view_size_mm(extent[-2:], world[1, -2:] - world[0, -2:])
    shown_mm = cell.min() / camera.zoom  # world span across the cell's narrow side
    assert 0.9 * expected_mm <= shown_mm <= 1.1 * expected_mm / 0.95, (
        f"{what}: a cell shows {shown_mm:.0f} mm across, expected ~{expected_mm:.0f} mm"
    )


def test_grid_comparison_frames_the_nodule_in_each_cell(setup, teacher, qtbot, artifacts):
    from napari_lungkd._napari._qt.demo_viewer import show_result

    viewer, widget, ct_layer, ct = setup
    widget.session.weights["teacher"] = teacher
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        widget.compare_panel.teacher_check.setChecked(True)  # the student, then the teacher
        qtbot.waitUntil(
            lambda: "teacher" in widget.session.results and widget.job is None, timeout=300_000
        )
        table = widget.nodule_table
        assert table.rowCount() >= 1
        nodule = table.nodules[0]  # the largest

        table.jump_to(0)  # framed for the whole canvas
        assert not grid_of(viewer).enabled
        _assert_framed_on(viewer, nodule, ct_layer, "jump, one view")
        single_zoom = camera_of(viewer).zoom

        widget.compare_panel.grid_check.setChecked(True)  # the user's click: side by side
        grid = grid_of(viewer)
        assert grid.enabled and tuple(grid.shape) == (1, 2)
        cell = cell_size_px(viewer)
        assert cell[1] < 0.6 * viewer.canvas.size[1]  # two cells side by side
        _assert_framed_on(viewer, nodule, ct_layer, "grid on")
        assert camera_of(viewer).zoom < single_zoom  # a narrower cell needs a smaller zoom

        show_result(widget)  # what `lungkd demo --teacher` ends on: the largest nodule, in the grid
        assert grid.enabled and widget.tabs.currentWidget() is widget.compare_panel
        best_z = largest_section_z(nodule, *(seg.mask for seg in widget.session.results.values()))
        assert viewer.dims.current_step[-3] == best_z  # the slice that shows the nodule best
        _assert_framed_on(viewer, nodule, ct_layer, "demo, grid on")
        # both cells' layers sliced before the grab
        qtbot.waitUntil(lambda: all(layer.loaded for layer in viewer.layers), timeout=10_000)
        viewer.screenshot(str(artifacts / "widget_grid_framed.png"), canvas_only=False)

        widget.compare_panel.grid_check.setChecked(False)
        assert not grid_of(viewer).enabled
        _assert_framed_on(viewer, nodule, ct_layer, "grid off again")
    old_names = [
        str(w.message)
        for w in caught
        if "viewer.camera is a deprecated" in str(w.message)
        or "viewer.grid is a deprecated" in str(w.message)
    ]
    assert not old_names, old_names  # the plugin uses viewer.scene.camera / viewer.canvas.grid
