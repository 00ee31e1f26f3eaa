"""Save a nodule mask with its provenance: the npe2 writer and the widget's Save button share this.

One save writes, each atomically (temporary file, then rename):

* the mask in the CT's own geometry — ``.nii.gz`` / ``.nii`` / ``.nrrd`` by the path's suffix
  (:func:`napari_lungkd.io.masks.write_mask`), plus a ``.nrrd`` twin on request;
* a DICOM-SEG ``<stem>.seg.dcm`` referencing the source slices, when the CT came from DICOM;
* a JSON sidecar ``<stem>.json``: model, weights SHA-256, package version, threshold, time, the
  files written and the voxels added / removed by hand relative to the model's own mask.

The CT comes from the layer's ``metadata["lungkd_ct"]`` (set by the reader and by every layer the
widget makes); the model's unedited mask and the run's provenance from ``metadata["lungkd_model_mask"]``
and ``metadata["lungkd_provenance"]``.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np

from napari_lungkd import __version__
from napari_lungkd.errors import ExportError

MASK_SUFFIXES = (".nii.gz", ".nii", ".nrrd")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in MASK_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def planned_paths(path, ct, nrrd: bool = False, dicom_seg: bool = True) -> dict[str, Path]:
    """The files one save of ``path`` writes (kind -> path), so the caller can ask before overwriting."""
    path = Path(path)
    if not any(path.name.lower().endswith(s) for s in MASK_SUFFIXES):
        raise ExportError(
            f"cannot save {path.name}: choose a name ending in .nii.gz, .nii or .nrrd."
        )
    stem = _stem(path)
    out = {"mask": path}
    if nrrd and not path.name.lower().endswith(".nrrd"):
        out["nrrd"] = path.with_name(f"{stem}.nrrd")
    if dicom_seg and ct is not None and ct.sop_uids:
        out["dicom_seg"] = path.with_name(f"{stem}.seg.dcm")
    out["sidecar"] = path.with_name(f"{stem}.json")
    return out


def save_mask_files(
    path,
    mask: np.ndarray,
    ct,
    *,
    model_mask: np.ndarray | None = None,
    provenance: dict[str, Any] | None = None,
    nrrd: bool = False,
    dicom_seg: bool = True,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write the mask files and the sidecar (see the module docstring); returns kind -> path."""
    from napari_lungkd.files import write_json
    from napari_lungkd.io.masks import write_mask as write_mask_file
    from napari_lungkd.scoring.comparison import edit_summary

    if ct is None:
        raise ExportError(
            f"cannot save {Path(path).name}: the mask layer carries no CT geometry (metadata 'lungkd_ct'); "
            "segment or load the mask through the Lung nodules widget."
        )
    mask = (np.asarray(mask) > 0).astype(np.uint8)
    if mask.shape != ct.shape:
        raise ExportError(
            f"cannot save {Path(path).name}: mask shape {mask.shape} differs from the CT's {ct.shape}."
        )
    paths = planned_paths(path, ct, nrrd=nrrd, dicom_seg=dicom_seg)
    if not overwrite:
        existing = [str(p) for p in paths.values() if p.exists()]
        if existing:
            raise ExportError(
                f"{existing[0]} already exists; choose another name or allow overwriting."
            )
    provenance = dict(provenance or {})
    edits = (
        edit_summary(model_mask, mask)
        if model_mask is not None and np.shape(model_mask) == mask.shape
        else None
    )

    write_mask_file(paths["mask"], mask, ct, overwrite=overwrite)
    if "nrrd" in paths:
        write_mask_file(paths["nrrd"], mask, ct, overwrite=overwrite)
    if "dicom_seg" in paths:
        from napari_lungkd.io.dicom.seg import write_dicom_seg

        write_dicom_seg(
            paths["dicom_seg"],
            mask,
            ct,
            overwrite=overwrite,
            algorithm_name=f"napari-lungkd {provenance.get('model', 'manual')}",
            edited_by_hand=bool(edits and (edits["voxels_added"] or edits["voxels_removed"])),
        )
    sidecar = {
        "mask": {k: p.name for k, p in paths.items() if k != "sidecar"},
        "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__,
        "model": provenance.get("model"),
        "weights_sha256": provenance.get("weights_sha256"),
        "threshold": provenance.get("threshold"),
        "device": provenance.get("device"),
        "provenance": provenance,
        "edits": edits,
        "ct": {
            "source": ct.source,
            "series_uid": ct.series_uid,
            "patient_id": ct.patient_id,
            "shape_zyx": list(ct.shape),
            "spacing_mm_zyx": [float(v) for v in ct.spacing_mm],
            "origin_lps_mm": [float(v) for v in ct.origin_mm],
            "direction": np.asarray(ct.direction, dtype=float).ravel().tolist(),
        },
        "voxels": int(np.count_nonzero(mask)),
    }
    write_json(paths["sidecar"], sidecar, overwrite=overwrite)
    return paths


def layer_ct(meta: dict[str, Any]):
    """The CtVolume a layer's ``metadata`` carries, or None."""
    return (meta or {}).get("lungkd_ct")


def write_mask(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 writer for a labels layer: File > Save Layers… to .nii.gz / .nii / .nrrd (+ sidecars).

    napari's save dialog has already asked before replacing the file, so existing files are
    overwritten here (atomically).
    """
    metadata = meta.get("metadata", {}) or {}
    ct = layer_ct(metadata)
    paths = save_mask_files(
        path,
        np.asarray(data),
        ct,
        model_mask=metadata.get("lungkd_model_mask"),
        provenance=metadata.get("lungkd_provenance"),
        dicom_seg=True,
        overwrite=True,
    )
    return [str(p) for p in paths.values()]
