"""One patient at a time in a viewer that holds several: the others' layers hidden, the slider on
the shown CT only.

napari's slice slider spans the world extent of *all* layers, visible or not; two CTs from
different scanners (LIDC-IDRI-0001 at z -340…-10 mm, LUNG1-001 elsewhere) share one slider of
both ranges, half of it black for either. :class:`PatientView` hides the layers of every other CT
(and shows them again when their patient is chosen) and keeps the z range of ``viewer.dims`` on the
shown CT's extent, re-applying it whenever napari recomputes the ranges (a layer added, removed or
moved). World coordinates stay patient LPS millimetres: nothing is translated.
"""

from __future__ import annotations

import numpy as np

from napari_lungkd._napari.layers import CT_KEY

HIDDEN_BY_PATIENT = "lungkd_hidden_by_patient"


class PatientView:
    """Keeps ``viewer`` on one CT: :meth:`show` it; :meth:`disconnect` when done."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.ct = None
        self._busy = False
        viewer.dims.events.range.connect(self._clamp)

    def disconnect(self) -> None:
        self.viewer.dims.events.range.disconnect(self._clamp)

    def show(self, ct) -> None:
        """Show ``ct``'s layers (those hidden for another patient come back), hide every other
        CT's layers, and put the slider on ``ct``'s slices (the current slice when it has one)."""
        self.ct = ct
        for layer in self.viewer.layers:
            owner = layer.metadata.get(CT_KEY)
            if owner is None:
                continue
            if owner is ct:
                if layer.metadata.pop(HIDDEN_BY_PATIENT, False):
                    layer.visible = True
            elif layer.visible:
                layer.visible = False
                layer.metadata[HIDDEN_BY_PATIENT] = True
        self._clamp()
        self.frame()

    def frame(self) -> None:
        """Fit the shown CT's slices in the canvas (napari's reset_view fits all patients)."""
        from napari_lungkd._napari.framing import MARGIN, camera_of, cell_size_px

        layer = self.ct_layer()
        if layer is None or self.viewer.dims.ndisplay != 2:
            return
        ext = np.asarray(layer.extent.world, dtype=float)[:, -2:]
        size = np.maximum(ext[1] - ext[0], 1e-6)
        camera = camera_of(self.viewer)
        camera.center = tuple((ext[0] + ext[1]) / 2)
        camera.zoom = float(np.min((1.0 - MARGIN) * cell_size_px(self.viewer) / size))

    def ct_layer(self):
        """The shown CT's own image layer, or None."""
        for layer in self.viewer.layers:
            if layer.metadata.get(CT_KEY) is self.ct and layer.metadata.get("lungkd_role") == "ct":
                return layer
        return None

    def z_range_mm(self):
        """(first, last, slice step) world z in mm of the shown CT's layer, or None."""
        layer = self.ct_layer()
        if layer is None:
            return None
        ext = np.asarray(layer.extent.world, dtype=float)
        return float(ext[0, -3]), float(ext[1, -3]), abs(float(layer.scale[-3]))

    def _clamp(self, event=None) -> None:
        """Set the slider's z axis to the shown CT (napari computes it from all layers)."""
        dims = self.viewer.dims
        z = self.z_range_mm()
        if self._busy or z is None or dims.ndim < 3:
            return
        axis = dims.ndim - 3
        extent = self.viewer.layers.extent  # what napari spans: every layer's extent
        world = np.asarray(extent.world, dtype=float)
        if world.shape[1] != dims.ndim:
            return
        lo, hi = max(world[0, axis], z[0]), min(world[1, axis], z[1])
        step = z[2] or float(extent.step[axis])  # one slider step per slice of this CT
        rng = dims.range[axis]
        same = np.allclose((lo, hi, step), (rng.start, rng.stop, rng.step))
        if hi < lo or same:
            return
        self._busy = True
        try:
            ranges = list(dims.range)
            ranges[axis] = type(rng)(lo, hi, step)
            point = dims.point[axis]
            dims.range = tuple(ranges)
            dims.set_point(axis, point if lo <= point <= hi else (lo + hi) / 2)
        finally:
            self._busy = False
