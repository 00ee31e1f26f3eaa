"""Layer data for a CtVolume, and the placement every layer derived from it must share.

napari draws layer data ``(z, y, x)`` at ``world = translate + scale * index`` (plus ``rotate`` for
the rare oblique volume). The loaders give volumes with identity direction whenever they can, so a
CT layer needs only ``scale = spacing_mm`` and ``translate = (origin_z, origin_y, origin_x)``, and
world coordinates are patient LPS millimetres (z, y, x). Masks, probabilities and annotation layers
take :func:`aligned_kwargs` so that they land on the CT voxel for voxel.
"""

from __future__ import annotations

import numpy as np

from napari_lungkd.ct import CtVolume
from napari_lungkd.windowing import DEFAULT_WINDOW, contrast_limits

CT_KEY = "lungkd_ct"


AXIS_LABELS = ("z", "y", "x")
"""The CT's index axes, slice first (every array in napari-lungkd is ``(z, y, x)``)."""


def _placement(ct: CtVolume) -> dict:
    placement = {
        "scale": tuple(float(s) for s in ct.spacing_mm),
        "translate": tuple(float(v) for v in ct.origin_mm[::-1]),
        "axis_labels": AXIS_LABELS,  # the dims slider says "z", not napari's "-3"
    }
    direction = np.asarray(ct.direction, dtype=float)
    if not np.allclose(direction, np.eye(3), atol=1e-6) and np.linalg.det(direction) > 0:
        # oblique volume: rotate index axes (z, y, x) onto patient (z, y, x)
        placement["rotate"] = direction[::-1, ::-1].copy()
    return placement


def patient_label(ct) -> str:
    """What names a patient's layers: the patient ID, else the CT's own short name."""
    return (getattr(ct, "patient_id", "") or getattr(ct, "name", "") or "CT").strip()


def layer_name(ct: CtVolume) -> str:
    """The patient and the end of the series UID (``LIDC-IDRI-0001 20603192``), else the file."""
    return ct.name


def ct_layer_data(ct: CtVolume) -> tuple:
    """``(hu, kwargs, "image")`` for napari: named, placed in LPS mm, lung window, CT attached."""
    kwargs = {
        "name": layer_name(ct),
        **_placement(ct),
        "contrast_limits": contrast_limits(DEFAULT_WINDOW),
        "colormap": "gray",
        "interpolation2d": "linear",
        "metadata": {CT_KEY: ct, "lungkd_role": "ct", "lungkd_window": DEFAULT_WINDOW},
    }
    return (ct.hu, kwargs, "image")


def ct_of(layer_or_ct) -> CtVolume | None:
    """The CtVolume behind a CT layer (or the CtVolume itself); None if there is none."""
    if isinstance(layer_or_ct, CtVolume):
        return layer_or_ct
    metadata = getattr(layer_or_ct, "metadata", None) or {}
    ct = metadata.get(CT_KEY)
    return ct if isinstance(ct, CtVolume) else None


def aligned_kwargs(ct_layer_or_ct) -> dict:
    """``scale``, ``translate`` (and ``rotate`` if oblique) and ``metadata={"lungkd_ct": ct}``.

    Give these to every layer derived from the CT (masks, probabilities, reader annotations). A
    layer without a CtVolume gives its own scale and translate and empty metadata.
    """
    ct = ct_of(ct_layer_or_ct)
    if ct is not None:
        return {**_placement(ct), "metadata": {CT_KEY: ct}}
    layer = ct_layer_or_ct
    return {
        "scale": tuple(float(s) for s in layer.scale),
        "translate": tuple(float(v) for v in layer.translate),
        "metadata": {},
    }


def set_window(layer, name: str) -> tuple[float, float]:
    """Apply a window preset (lung, mediastinum, bone) to an image layer; returns its limits."""
    limits = contrast_limits(name)
    layer.contrast_limits = limits
    layer.metadata["lungkd_window"] = name
    return limits
