"""Save and Load mask for the dock widget (the Save tab).

Save writes the active mask layer (the user's corrected mask) through
:func:`napari_lungkd._napari.writer.save_layer`, i.e. :func:`napari_lungkd.io.masks.save_mask` as
the CLI does; when any target file exists the user is asked before anything is overwritten. Load
reads a NIfTI / NRRD (via :func:`napari_lungkd.io.masks.read_mask`,
which refuses a mask of another geometry) or a DICOM-SEG back onto the chosen CT as a Labels layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.layers import Labels
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QFileDialog, QMessageBox

from napari_lungkd._napari import result_layers as rl
from napari_lungkd._napari._qt.workers import report_error

FILTER = "Masks (*.nii.gz *.nii *.nrrd *.dcm);;All files (*)"


class MaskFlow:
    def __init__(self, widget):
        self.w = widget
        panel = widget.save_panel
        panel.save_button.clicked.connect(lambda: self.save())
        panel.load_button.clicked.connect(lambda: self.load())

    def mask_layer(self):
        """The mask to save: the selected Labels layer on the CT, else the student's / teacher's."""
        viewer = self.w.viewer
        active = viewer.layers.selection.active
        if isinstance(active, Labels) and "lungkd_ct" in active.metadata:
            return active
        for model in ("student", "teacher"):
            name = rl.mask_layer_name(model)
            if name in viewer.layers:
                return viewer.layers[name]
        for layer in viewer.layers:
            if isinstance(layer, Labels) and "lungkd_ct" in layer.metadata:
                return layer
        return None

    def confirm_overwrite(self, existing: list[Path]) -> bool:
        names = "\n".join(str(p) for p in existing)
        answer = QMessageBox.question(
            self.w,
            "Replace existing files?",
            f"These files already exist:\n{names}\n\nReplace them?",
            QMessageBox.Yes | QMessageBox.No,
            QMessageBox.No,
        )
        return answer == QMessageBox.Yes

    def save(self, path: str | Path | None = None) -> dict | None:
        from napari_lungkd._napari.writer import save_layer
        from napari_lungkd.io.masks import planned_paths

        layer = self.mask_layer()
        status = self.w.save_panel.status
        if layer is None:
            show_error("There is no mask layer to save: segment the CT or load a mask first.")
            return None
        ct = layer.metadata["lungkd_ct"]
        if path is None:
            default = Path(ct.source).parent if ct.source else Path.home()
            path, _ = QFileDialog.getSaveFileName(
                self.w,
                "Save nodule mask",
                str(default / f"{layer.name.replace(' ', '_')}.nii.gz"),
                FILTER,
                options=QFileDialog.DontConfirmOverwrite,
            )
            if not path:
                return None
        panel = self.w.save_panel
        nrrd, seg = panel.nrrd_check.isChecked(), panel.seg_check.isChecked()
        try:
            targets = planned_paths(path, ct, nrrd=nrrd, dicom_seg=seg)
            existing = [p for p in targets.values() if p.exists()]
            if existing and not self.confirm_overwrite(existing):
                status.setText("not saved: the existing files were kept")
                return None
            written = save_layer(
                path, layer.data, layer.metadata, nrrd=nrrd, dicom_seg=seg, overwrite=bool(existing)
            )
        except Exception as exc:  # noqa: BLE001 - one sentence in the viewer, traceback in the log
            status.setText(f"not saved: {report_error(exc, 'saving the mask')}")
            return None
        status.setText("saved: " + ", ".join(p.name for p in written.values()))
        show_info(f"Saved {layer.name} to {written['mask']}")
        return written

    def load(self, path: str | Path | None = None):
        """Load a saved mask onto the chosen CT as an editable Labels layer; returns the layer."""
        from napari_lungkd.io.masks import read_mask
        from napari_lungkd.io.sidecar import read_provenance

        w = self.w
        ct_layer, ct = w.ct_layer(), w.ct()
        if ct is None:
            show_error("Open the CT the mask belongs to first: a mask is loaded onto a CT layer.")
            return None
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                w, "Load nodule mask", str(Path(ct.source).parent), FILTER
            )
            if not path:
                return None
        path = Path(path)
        try:
            if path.suffix.lower() == ".dcm":
                from napari_lungkd.io.dicom.seg import read_dicom_seg

                data = read_dicom_seg(path, ct)
            else:
                data = read_mask(path, ct)
        except Exception as exc:  # noqa: BLE001 - one sentence in the viewer, traceback in the log
            report_error(exc, f"loading {path.name}")
            return None
        data = (np.asarray(data) > 0).astype(np.uint8)
        name = f"loaded {path.name}"
        provenance, warning = read_provenance(path)
        if warning:
            show_warning(warning)
        layer = w.viewer.add_labels(
            data,
            name=name,
            colormap=rl.labels_colormap({1: rl.COLOURS["edited"]}),
            opacity=0.6,
            **rl.aligned(
                ct_layer,
                metadata={
                    "lungkd_model_mask": data.copy(),
                    "lungkd_provenance": provenance,
                    "lungkd_source": str(path),
                },
            ),
        )
        w.save_panel.status.setText(f"loaded {path.name}: {int(data.sum())} voxels")
        return layer
