"""Save and Load mask for the dock widget (the Save tab).

Save writes the current patient's corrected mask (the selected result layer, else the student's)
through :func:`napari_lungkd._napari.writer.save_layer`, i.e.
:func:`napari_lungkd.io.masks.save_mask` as the CLI does, and beside it the model's own mask
(``…_model.nii.gz``). The dialog proposes a results folder outside the source data, named by
patient and series (:mod:`napari_lungkd._napari.save_paths`); writing into the CT's own source
folder, or over existing files, is done only after the user says yes. Load reads a NIfTI / NRRD
(via :func:`napari_lungkd.io.masks.read_mask`, which refuses a mask of another geometry) or a
DICOM-SEG back onto the chosen CT as a Labels layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.layers import Labels
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QFileDialog, QMessageBox

from napari_lungkd._napari import result_layers as rl
from napari_lungkd._napari._qt.workers import report_error

SAVABLE_ROLES = (rl.MASK, "loaded")
FILTER = "Masks (*.nii.gz *.nii *.nrrd *.dcm);;All files (*)"


class MaskFlow:
    def __init__(self, widget):
        self.w = widget
        panel = widget.save_panel
        panel.save_button.clicked.connect(lambda: self.save())
        panel.load_button.clicked.connect(lambda: self.load())

    def mask_layer(self):
        """The mask Save writes: the selected result (or loaded) mask of the current patient,
        else its student's, else its teacher's; never a reader or consensus layer."""
        w = self.w
        ct = w.session.ct
        if ct is None:
            return None
        active = w.viewer.layers.selection.active
        if (
            isinstance(active, Labels)
            and active.metadata.get("lungkd_ct") is ct
            and active.metadata.get("lungkd_role") in SAVABLE_ROLES
        ):
            return active
        for model in ("student", "teacher"):
            layer = w.layer(rl.MASK, model)
            if layer is not None:
                return layer
        return w.layer("loaded")

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(
            self.w, title, text, QMessageBox.Yes | QMessageBox.No, QMessageBox.No
        )
        return answer == QMessageBox.Yes

    def confirm_source_folder(self, path: Path) -> bool:
        return self._ask(
            "Write into the CT's source folder?",
            f"{path.parent} is the folder the CT was read from (the source data).\n\n"
            "Write the mask there anyway?",
        )

    def confirm_overwrite(self, existing: list[Path]) -> bool:
        names = "\n".join(str(p) for p in existing)
        return self._ask(
            "Replace existing files?", f"These files already exist:\n{names}\n\nReplace them?"
        )

    def default_path(self, layer) -> Path:
        from napari_lungkd._napari.save_paths import default_mask_path

        model = layer.metadata.get("lungkd_model") or "mask"
        return default_mask_path(layer.metadata["lungkd_ct"], f"{model}_corrected")

    def save(self, path: str | Path | None = None) -> dict | None:
        """Save the corrected mask and the model's own beside it; returns kind -> path written."""
        from napari_lungkd._napari.save_paths import in_source_folder
        from napari_lungkd._napari.writer import save_layer
        from napari_lungkd.io.masks import planned_paths
        from napari_lungkd.io.sidecar import mask_stem

        layer = self.mask_layer()
        status = self.w.save_panel.status
        if layer is None:
            show_error("There is no mask layer to save: segment the CT or load a mask first.")
            return None
        ct = layer.metadata["lungkd_ct"]
        if path is None:
            default = self.default_path(layer)
            path, _ = QFileDialog.getSaveFileName(
                self.w,
                f"Save {layer.name}",
                str(default),
                FILTER,
                options=QFileDialog.DontConfirmOverwrite,
            )
            if not path:
                return None
        path = Path(path).expanduser()
        if in_source_folder(path, ct) and not self.confirm_source_folder(path):
            status.setText("not saved: nothing is written into the CT's source folder")
            return None
        panel = self.w.save_panel
        nrrd, seg = panel.nrrd_check.isChecked(), panel.seg_check.isChecked()
        model_mask = layer.metadata.get("lungkd_model_mask")
        try:
            targets = planned_paths(path, ct, nrrd=nrrd, dicom_seg=seg)
            original = None
            if model_mask is not None:
                original = path.with_name(f"{mask_stem(path)}_model.nii.gz")
                targets.update({f"model {k}": p for k, p in planned_paths(original, ct).items()})
            existing = [p for p in targets.values() if p.exists()]
            if existing and not self.confirm_overwrite(existing):
                status.setText("not saved: the existing files were kept")
                return None
            path.parent.mkdir(parents=True, exist_ok=True)
            meta = layer.metadata
            written = save_layer(
                path, layer.data, meta, nrrd=nrrd, dicom_seg=seg, overwrite=bool(existing)
            )
            if original is not None:
                own = {**meta, "lungkd_model_mask": None}
                model_files = save_layer(
                    original, model_mask, own, dicom_seg=False, overwrite=bool(existing)
                )
                written.update({f"model {k}": p for k, p in model_files.items()})
        except Exception as exc:  # noqa: BLE001 - one sentence in the viewer, traceback in the log
            status.setText(f"not saved: {report_error(exc, 'saving the mask')}")
            return None
        status.setText(
            f"saved {layer.name} to {path.parent}: " + ", ".join(p.name for p in written.values())
        )
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
            from napari_lungkd._napari.save_paths import results_root

            path, _ = QFileDialog.getOpenFileName(
                w, "Load nodule mask", str(results_root()), FILTER
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
        provenance, warning = read_provenance(path)
        if warning:
            show_warning(warning)
        meta = rl.meta_for(
            ct,
            "loaded",
            lungkd_model_mask=data.copy(),
            lungkd_provenance=provenance,
            lungkd_source=str(path),
        )
        layer = w.viewer.add_labels(
            data,
            name=rl.title(ct, f"loaded {path.name}"),
            colormap=rl.labels_colormap({1: rl.COLOURS["edited"]}, default=rl.COLOURS["edited"]),
            **rl.aligned(ct_layer, metadata=meta),
        )
        rl.outline(layer, w.view_panel.fill_check.isChecked())
        w.save_panel.status.setText(f"loaded {path.name}: {int(data.sum())} voxels")
        return layer
