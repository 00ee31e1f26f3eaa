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
        np.asarray(data),
        ct,
        provenance=metadata.get("lungkd_provenance"),
        model_mask=metadata.get("lungkd_model_mask"),
        nrrd=nrrd,
        dicom_seg=dicom_seg,
        overwrite=overwrite,
    )


def write_mask(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 writer for a labels layer: File > Save Layers… to .nii.gz / .nii / .nrrd (+ sidecars).

    napari's save dialog has already asked before replacing the file, so existing files are
    overwritten here (atomically).
    """
    paths = save_layer(path, data, meta.get("metadata", {}), dicom_seg=True, overwrite=True)
    return [str(p) for p in paths.values()]
