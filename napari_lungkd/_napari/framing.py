"""The camera and the grid across napari versions, and framing a box in one grid cell.

napari 0.9 moved ``viewer.camera`` to ``viewer.scene.camera`` and ``viewer.grid`` to
``viewer.canvas.grid`` (the old names warn); :func:`camera_of` and :func:`grid_of` take the new
path where it exists and the old one on older napari, so the plugin emits no deprecation warning.

Since napari 0.6.2 grid mode draws each cell in its own vispy ViewBox, all with one linked camera:
``camera.zoom`` is canvas pixels per world unit *inside a cell* and ``camera.center`` is the world
point at the middle of every cell. So a nodule is framed in every cell at once by centring on it and
choosing the zoom for the size of one cell (:func:`cell_size_px`), not of the whole canvas. Older
napari (grid by translating layers side by side) cannot do that; there the whole grid is shown.
"""

from __future__ import annotations

import numpy as np

CONTEXT = 8.0  # the view spans ~8x the nodule ...
MIN_VIEW_MM = 100.0  # ... but at least 100 mm (enough anatomy to see where it is) ...
MAX_SCENE_FRACTION = 0.5  # ... and at most half the scene (else it is not a zoom at all)
MARGIN = 0.05  # napari's reset_view margin


def camera_of(viewer):
    """The viewer's camera model (``viewer.scene.camera`` on napari >= 0.9)."""
    camera = getattr(getattr(viewer, "scene", None), "camera", None)
    return camera if camera is not None else viewer.camera


def grid_of(viewer):
    """The viewer's grid model (``viewer.canvas.grid`` on napari >= 0.9)."""
    grid = getattr(getattr(viewer, "canvas", None), "grid", None)
    return grid if grid is not None else viewer.grid


def _grid_translates_layers(viewer) -> bool:
    """True on napari < 0.6.2 with the grid on: cells are layers moved side by side in one view."""
    return any(
        np.any(np.asarray(getattr(layer, "_translate_grid", 0.0), dtype=float) != 0)
        for layer in viewer.layers
    )


def cell_size_px(viewer) -> np.ndarray:
    """(height, width) in canvas pixels of one grid cell, or of the whole canvas without a grid."""
    canvas = getattr(viewer, "canvas", None)
    if canvas is not None and hasattr(canvas, "viewbox_size"):
        return np.asarray(canvas.viewbox_size(viewer.layers), dtype=float)
    size = np.asarray(getattr(viewer, "_canvas_size", (600, 800)), dtype=float)
    grid = grid_of(viewer)
    if grid.enabled:
        try:
            shape = grid.actual_shape(viewer.layers)
        except (TypeError, AttributeError):  # older signature: the number of layers
            shape = grid.actual_shape(len(viewer.layers))
        size = size / np.maximum(np.asarray(shape, dtype=float), 1.0)
    return size


def view_size_mm(extent_yx, scene_yx) -> float:
    """How much world (mm) one cell should span around a box of ``extent_yx`` in a scene of
    ``scene_yx``: ~8x the box, at least 100 mm, at most half the scene."""
    scene_mm = float(np.max(scene_yx))
    size = max(float(np.max(extent_yx)) * CONTEXT, MIN_VIEW_MM)
    return max(min(size, scene_mm * MAX_SCENE_FRACTION), 1e-6)


def frame_box(viewer, centre, extent) -> None:
    """Centre the camera on a world box (z, y, x) and zoom so that each grid cell (or the canvas)
    shows ~8x the box. Starts from ``reset_view`` so the zoom never compounds; it never zooms out
    beyond "whole scene fits". On napari without per-cell cameras, with the grid on, it only
    resets the view (both cells whole)."""
    viewer.reset_view()
    if _grid_translates_layers(viewer):
        return
    cam = camera_of(viewer)
    world = np.asarray(viewer.layers.extent.world, dtype=float)
    scene_yx = world[1, -2:] - world[0, -2:]
    size_mm = view_size_mm(np.asarray(extent, dtype=float)[-2:], scene_yx)
    cell_px = float(np.min(cell_size_px(viewer)))
    cam.zoom = max(cam.zoom, (1.0 - MARGIN) * cell_px / size_mm)
    centre = tuple(float(c) for c in np.asarray(centre, dtype=float)[-3:])
    cam.center = centre[-2:] if viewer.dims.ndisplay == 2 else centre
