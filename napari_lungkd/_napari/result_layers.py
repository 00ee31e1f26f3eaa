"""Put segmentation results into the viewer as layers aligned with their CT.

Every layer made here takes the CT layer's scale, translate and ``metadata["lungkd_ct"]``
(:func:`napari_lungkd._napari.layers.aligned_kwargs`), so masks sit on the CT in world
coordinates whatever its spacing and origin (napari issue #5512 shows what happens otherwise).
Colours are fixed per role so that student and teacher are told apart at a glance.
"""

from __future__ import annotations

import numpy as np
from napari.utils.colormaps import DirectLabelColormap

COLOURS = {
    "student": "#ffd400",  # yellow
    "teacher": "#ff3cf0",  # magenta
    "edited": "#00e5ff",
}
DISAGREEMENT_COLOURS = {1: COLOURS["student"], 2: COLOURS["teacher"]}


def mask_layer_name(model: str) -> str:
    return f"{model} nodules"


def probability_layer_name(model: str) -> str:
    return f"{model} probability"


DISAGREEMENT_NAME = "student vs teacher"
GRID_CT_NAME = "CT (teacher view)"
_HIDDEN_BY_GRID = "lungkd_hidden_by_grid"


def labels_colormap(colours: dict[int, str]) -> DirectLabelColormap:
    colour_dict = {0: "transparent", None: "transparent"}
    colour_dict.update(colours)
    return DirectLabelColormap(color_dict=colour_dict)


def aligned(ct_layer, **extra) -> dict:
    from napari_lungkd._napari.layers import aligned_kwargs

    kwargs = aligned_kwargs(ct_layer)
    metadata = dict(kwargs.get("metadata", {}))
    metadata.update(extra.pop("metadata", {}))
    kwargs["metadata"] = metadata
    kwargs.update(extra)
    return kwargs


def _replace(viewer, name: str, add):
    """Replace the layer called ``name`` (if any) with the one ``add()`` makes, at the same place."""
    index = viewer.layers.index(name) if name in viewer.layers else None
    if index is not None:
        viewer.layers.pop(index)
    layer = add()
    if index is not None:
        viewer.layers.move(viewer.layers.index(layer), index)
    return layer


def show_segmentation(viewer, ct_layer, model: str, seg, provenance: dict | None = None):
    """Add (or replace) the model's editable mask (Labels) and hidden probability (Image) layers."""
    colour = COLOURS.get(model, COLOURS["edited"])
    model_mask = (np.asarray(seg.mask) > 0).astype(np.uint8)  # seg.mask is labelled per nodule
    meta = {
        "lungkd_model_mask": model_mask.copy(),
        "lungkd_provenance": dict(provenance or seg.provenance.to_dict()),
        "lungkd_role": f"{model} mask",
    }
    prob = _replace(
        viewer,
        probability_layer_name(model),
        lambda: viewer.add_image(
            np.asarray(seg.probability),
            name=probability_layer_name(model),
            colormap="inferno",
            contrast_limits=(0.0, 1.0),
            blending="additive",
            visible=False,
            **aligned(ct_layer, metadata={"lungkd_role": f"{model} probability"}),
        ),
    )
    mask = _replace(
        viewer,
        mask_layer_name(model),
        lambda: viewer.add_labels(
            model_mask.copy(),
            name=mask_layer_name(model),
            colormap=labels_colormap({1: colour}),
            opacity=0.6,
            **aligned(ct_layer, metadata=meta),
        ),
    )
    return mask, prob


def show_disagreement(viewer, ct_layer, labels: np.ndarray):
    """Add (or replace) the student-only (1) / teacher-only (2) layer."""
    return _replace(
        viewer,
        DISAGREEMENT_NAME,
        lambda: viewer.add_labels(
            np.asarray(labels, dtype=np.uint8),
            name=DISAGREEMENT_NAME,
            colormap=labels_colormap(DISAGREEMENT_COLOURS),
            opacity=0.9,
            **aligned(ct_layer, metadata={"lungkd_role": "disagreement"}),
        ),
    )


def remove_layers(viewer, names) -> None:
    for name in names:
        if name in viewer.layers:
            viewer.layers.remove(name)


def set_side_by_side(viewer, ct_layer, on: bool) -> None:
    """Grid view with two cells: CT + student mask | CT + teacher mask (a second CT layer shares
    the data, napari cannot show one layer in two cells). Off: back to one view. The camera is
    left alone: the caller frames the view for the new cell size (see :mod:`framing`)."""
    from napari_lungkd._napari.framing import grid_of

    grid = grid_of(viewer)
    left = [ct_layer.name, mask_layer_name("student")]
    right = [GRID_CT_NAME, mask_layer_name("teacher")]
    if not on:
        remove_layers(viewer, [GRID_CT_NAME])
        grid.enabled = False
        for layer in viewer.layers:  # show again what the grid hid
            if layer.metadata.pop(_HIDDEN_BY_GRID, False):
                layer.visible = True
        return
    if GRID_CT_NAME not in viewer.layers:
        viewer.add_image(
            ct_layer.data,
            name=GRID_CT_NAME,
            colormap="gray",
            contrast_limits=ct_layer.contrast_limits,
            **aligned(ct_layer),
        )
    # keep only the two pairs in the grid: other derived layers are hidden while it is on
    order = [n for n in left + right if n in viewer.layers]
    for layer in viewer.layers:
        if layer.name not in order and layer.visible:
            layer.visible = False
            layer.metadata[_HIDDEN_BY_GRID] = True
    for i, name in enumerate(order):
        viewer.layers.move(viewer.layers.index(name), i)
    grid.stride = 2
    grid.shape = (1, 2)
    grid.enabled = True
