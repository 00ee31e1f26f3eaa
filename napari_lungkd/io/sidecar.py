"""The provenance sidecar: one JSON schema beside every saved mask, written and read here only.

``<stem>.json`` beside ``<stem>.nii.gz`` (or ``.nii``, ``.nrrd``, ``.seg.dcm``) holds::

    schema           "napari-lungkd.mask-sidecar/1"
    mask             kind -> file name of every file this save wrote (mask, nrrd, dicom_seg)
    saved_at         UTC time, ISO 8601
    package_version  napari-lungkd's version
    model, weights_sha256, threshold, device    copied from the provenance, for a quick look
    weights          one line: what the weights were trained on and how they score (synthetic
                     and real CT), :func:`napari_lungkd.models.weights_card.describe_provenance`
    labels           how to read the mask's values: "nodule i = label i" or "binary"
    provenance       the run's full provenance (a dict, or an object's ``to_dict()``)
    edits            voxels added / removed by hand against the model's mask (null: not edited)
    ct               source, series_uid, patient_id, shape, spacing, origin, direction
    voxels           nonzero voxels in the mask
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = "napari-lungkd.mask-sidecar/1"
_MASK_NAME_SUFFIXES = (".seg.dcm", ".nii.gz", ".nii", ".nrrd", ".dcm")


def mask_stem(path) -> str:
    """The file name of a mask without its mask suffix (``a.nii.gz`` -> ``a``)."""
    name = Path(path).name
    for suffix in _MASK_NAME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def sidecar_path(mask_path) -> Path:
    """Where the sidecar of ``mask_path`` lives: ``<stem>.json`` in the same folder."""
    mask_path = Path(mask_path).expanduser()
    return mask_path.with_name(f"{mask_stem(mask_path)}.json")


def provenance_dict(provenance) -> dict[str, Any]:
    """Provenance as a plain dict: None -> {}, a mapping as is, an object through ``to_dict()``."""
    if provenance is None:
        return {}
    if isinstance(provenance, Mapping):
        return dict(provenance)
    to_dict = getattr(provenance, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    raise TypeError(f"provenance must be a dict or have to_dict(), not {type(provenance).__name__}")


def build_sidecar(
    files: Mapping[str, Path],
    mask: np.ndarray,
    ct,
    provenance,
    edits: dict | None,
    labels: str | None = None,
) -> dict[str, Any]:
    """The sidecar document for one save (see the module docstring)."""
    from napari_lungkd import __version__
    from napari_lungkd.models.weights_card import describe_provenance

    prov = provenance_dict(provenance)
    return {
        "schema": SCHEMA,
        "mask": {kind: Path(p).name for kind, p in files.items()},
        "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__,
        "model": prov.get("model"),
        "weights_sha256": prov.get("weights_sha256"),
        "threshold": prov.get("threshold"),
        "device": prov.get("device"),
        "weights": describe_provenance(prov),
        "labels": labels,
        "provenance": prov,
        "edits": edits,
        "ct": {
            "source": None if ct.source is None else str(ct.source),
            "series_uid": ct.series_uid,
            "patient_id": ct.patient_id,
            "shape_zyx": list(ct.shape),
            "spacing_mm_zyx": [float(v) for v in ct.spacing_mm],
            "origin_lps_mm": [float(v) for v in ct.origin_mm],
            "direction": np.asarray(ct.direction, dtype=float).ravel().tolist(),
        },
        "voxels": int(np.count_nonzero(mask)),
    }


def read_provenance(mask_path) -> tuple[dict[str, Any], str | None]:
    """The provenance saved beside ``mask_path``, and a warning when it cannot be read.

    No sidecar at all is normal (a mask from another tool): ``({}, None)``. A sidecar that is not
    JSON, or whose ``provenance`` is not an object, gives ``({}, warning)``: one sentence naming
    the file, for the caller to show, so the loss of provenance is never silent.
    """
    path = sidecar_path(mask_path)
    if not path.is_file():
        return {}, None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return (
            {},
            f"{path} cannot be read as JSON ({reason}); the mask is loaded without provenance.",
        )
    if not isinstance(doc, dict):
        return {}, (
            f"{path} holds a JSON {type(doc).__name__}, not a sidecar object; "
            "the mask is loaded without provenance."
        )
    provenance = doc.get("provenance")
    if provenance is None:
        return {}, f"{path} has no provenance; the mask is loaded without it."
    if not isinstance(provenance, dict):
        return {}, (
            f"{path} has a provenance that is a JSON {type(provenance).__name__}, not an object; "
            "the mask is loaded without provenance."
        )
    return dict(provenance), None
