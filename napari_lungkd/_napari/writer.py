"""Save a nodule mask layer: the npe2 writer and the widget's Save button, both through io.save_mask.

:func:`napari_lungkd.io.masks.save_mask` writes the files (the same as ``lungkd segment``): the
mask, a NRRD twin / DICOM-SEG on request, and the provenance sidecar. This module only takes what
the layer carries: the CT from ``metadata["lungkd_ct"]`` (set by the reader and by every layer the
widget makes), the model's unedited mask from ``metadata["lungkd_model_mask"]`` and the run's
provenance from ``metadata["lungkd_provenance"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def layer_ct(meta: dict[str, Any]):
    """The CtVolume a layer's ``metadata`` carries, or None."""
    return (meta or {}).get("lungkd_ct")


def save_layer(
    path,
    data: Any,
    metadata: dict[str, Any],
    *,
    nrrd: bool = False,
    dicom_seg: bool = True,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Save a Labels layer's ``data`` with what its ``metadata`` carries; returns kind -> path."""
    from napari_lungkd.errors import ExportError
    from napari_lungkd.io.masks import save_mask

    metadata = metadata or {}
    ct = layer_ct(metadata)
    if ct is None:
        raise ExportError(
            f"cannot save {Path(path).name}: the mask layer carries no CT geometry (metadata "
            "'lungkd_ct'); segment or load the mask through the Lung nodules widget."
        )
    return save_mask(
        path,
        settle_edits(np.asarray(data)),
        ct,
        provenance=metadata.get("lungkd_provenance"),
        model_mask=metadata.get("lungkd_model_mask"),
        nrrd=nrrd,
        dicom_seg=dicom_seg,
        overwrite=overwrite,
        labels=bool(np.size(data)) and int(np.max(data)) > 1,  # one label per nodule: kept
    )


def settle_edits(data: np.ndarray) -> np.ndarray:
    """The mask to save: voxels painted by hand (``EDIT_LABEL``) join the nodule they touch (its
    label), and painted blobs touching none become new nodules (labels after the last one), so
    that label i stays nodule i. A mask without painted voxels is returned as it is."""
    from scipy import ndimage

    from napari_lungkd._napari.result_layers import EDIT_LABEL

    painted = data == EDIT_LABEL
    if not painted.any():
        return data
    out = data.astype(np.uint16 if data.dtype.itemsize < 2 else data.dtype, copy=True)
    out[painted] = 0
    pieces, n = ndimage.label(data > 0, structure=np.ones((3, 3, 3), dtype=bool))
    next_label = int(out.max()) + 1
    for i, box in enumerate(ndimage.find_objects(pieces), start=1):
        piece = pieces[box] == i
        edit = piece & painted[box]
        if not edit.any():
            continue
        labels = out[box][piece & ~painted[box]]
        labels = labels[labels > 0]
        if labels.size:
            value = int(np.bincount(labels).argmax())
        else:
            value, next_label = next_label, next_label + 1
        out[box][edit] = value
    return out if int(out.max()) > 255 else out.astype(np.uint8)


def write_mask(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 writer for a labels layer: File > Save Layers… to .nii.gz / .nii / .nrrd (+ sidecars).

    napari's save dialog has already asked before replacing the file, so existing files are
    overwritten here (atomically).
    """
    paths = save_layer(path, data, meta.get("metadata", {}), dicom_seg=True, overwrite=True)
    return [str(p) for p in paths.values()]
