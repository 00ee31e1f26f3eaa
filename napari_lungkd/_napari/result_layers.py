"""Put segmentation results into the viewer as layers aligned with their CT, one patient's at a time.

Every layer made here takes the CT layer's scale, translate and ``metadata["lungkd_ct"]``
(:func:`napari_lungkd._napari.layers.aligned_kwargs`), so masks sit on the CT in world
coordinates whatever its spacing and origin (napari issue #5512 shows what happens otherwise).

Results belong to a CT: a layer is found by its CT and its role (:func:`find_layer`), never by
name alone, and is named after the patient (``LIDC-IDRI-0001 · student``), so two patients' results
live side by side in one viewer. Masks and readers are drawn as outlines by default (a radiologist
judges the edge; :func:`set_fill` fills them); colours are fixed per role (:data:`LEGEND`).
The user's brush paints :data:`EDIT_LABEL` (its own colour), and the model's own mask stays beside
the corrected one in a hidden layer. Every candidate of a run, with its score, is a hidden points
layer (:func:`show_candidates`): those below the operating point are drawn grey.
"""

from __future__ import annotations

import numpy as np
from napari.utils.colormaps import DirectLabelColormap

from napari_lungkd._napari.layers import CT_KEY, patient_label

COLOURS = {
    "student": "#ffd400",  # yellow
    "teacher": "#ff3cf0",  # magenta
    "both": "#ffffff",  # white: student and teacher agree
    "edited": "#00e5ff",  # cyan: voxels painted by hand
    "consensus": "#00ff7f",  # green
}
READER_COLOURS = ("#4d8dff", "#9db4ff", "#3355cc", "#7a6cff", "#5fa8d3", "#b0c4ff")
"""Readers in one family of blues, far from the models' yellow and magenta."""
STUDENT_ONLY, TEACHER_ONLY, BOTH = 1, 2, 3
DISAGREEMENT_COLOURS = {
    STUDENT_ONLY: COLOURS["student"],
    TEACHER_ONLY: COLOURS["teacher"],
    BOTH: COLOURS["both"],
}
EDIT_LABEL = 255
"""The label napari's brush paints into a result mask: shown in the edit colour, saved as nodule."""
LEGEND = (
    ("student", COLOURS["student"]),
    ("teacher", COLOURS["teacher"]),
    ("both agree", COLOURS["both"]),
    ("student only / teacher only", f"{COLOURS['student']}|{COLOURS['teacher']}"),
    ("painted by hand", COLOURS["edited"]),
    ("LIDC readers", READER_COLOURS[0]),
    ("LIDC consensus", COLOURS["consensus"]),
)
"""(what, colour) pairs of the one legend the widget shows."""
DROPPED_COLOUR = "#9a9a9a"
"""Candidates below the operating point (the points layer)."""
CANDIDATE_RING_MM = (8.0, 6.0)
"""A candidate's ring: its longest diameter plus 6 mm, at least 8 mm across."""
OUTLINE, FILL_OPACITY = 2, 0.5
_HIDDEN_BY_GRID = "lungkd_hidden_by_grid"
MASK, ORIGINAL, PROBABILITY = "mask", "model mask", "probability"
DISAGREEMENT, GRID_CT, CANDIDATES = "disagreement", "grid ct", "candidates"
LIDC_READER, LIDC_CONSENSUS = "lidc reader", "lidc consensus"
OUTLINED_ROLES = ("mask", "model mask", "disagreement", "lidc reader", "lidc consensus", "loaded")


# ---- names and finding ---------------------------------------------------------------------
def title(ct, what: str) -> str:
    """``LIDC-IDRI-0001 · student``: a layer name that says whose it is."""
    return f"{patient_label(ct)} · {what}"


def mask_layer_name(model: str, ct) -> str:
    return title(ct, model)


def original_layer_name(model: str, ct) -> str:
    return title(ct, f"{model} (model's own)")


def probability_layer_name(model: str, ct) -> str:
    return title(ct, f"{model} probability")


def candidates_layer_name(model: str, ct) -> str:
    return title(ct, f"{model} candidates")


def disagreement_name(ct) -> str:
    return title(ct, "student vs teacher")


def grid_ct_name(ct) -> str:
    return title(ct, "CT (teacher view)")


def meta_for(ct, role: str, model: str | None = None, **more) -> dict:
    """The metadata that ties a layer to its CT and says what it is."""
    return {CT_KEY: ct, "lungkd_role": role, "lungkd_model": model, **more}


def find_layer(viewer, ct, role: str, model: str | None = None):
    """The layer of ``ct`` with this role (and model), or None."""
    for layer in viewer.layers:
        meta = layer.metadata
        if meta.get(CT_KEY) is ct and meta.get("lungkd_role") == role:
            if model is None or meta.get("lungkd_model") == model:
                return layer
    return None


def layers_of(viewer, ct) -> list:
    """Every layer placed on ``ct`` (the CT layer included)."""
    return [layer for layer in viewer.layers if layer.metadata.get(CT_KEY) is ct]


def labels_colormap(colours: dict, default: str = "transparent") -> DirectLabelColormap:
    """Label -> colour; labels not listed take ``default`` (the model colour for labelled masks)."""
    colour_dict = {0: "transparent", None: default}
    colour_dict.update(colours)
    return DirectLabelColormap(color_dict=colour_dict)


def result_colormap(model: str, by_hand=()) -> DirectLabelColormap:
    """Every nodule label in the model's colour; hand-painted voxels and the labels of nodules
    added by hand (``by_hand``: accepted candidates) in the edit colour."""
    colour = COLOURS.get(model, COLOURS["edited"])
    hand = {int(label): COLOURS["edited"] for label in (*by_hand, EDIT_LABEL)}
    return labels_colormap({1: colour, **hand}, default=colour)


def aligned(ct_layer, **extra) -> dict:
    from napari_lungkd._napari.layers import aligned_kwargs

    kwargs = aligned_kwargs(ct_layer)
    metadata = dict(kwargs.get("metadata", {}))
    metadata.update(extra.pop("metadata", {}))
    kwargs["metadata"] = metadata
    kwargs.update(extra)
    return kwargs


def outline(layer, fill: bool = False) -> None:
    """Draw a Labels layer as outlines (default) or filled."""
    layer.contour = 0 if fill else OUTLINE
    layer.opacity = FILL_OPACITY if fill else 1.0


def set_fill(viewer, fill: bool) -> int:
    """Fill (or outline) every result and reader layer; returns how many were changed."""
    from napari.layers import Labels

    n = 0
    for layer in viewer.layers:
        if isinstance(layer, Labels) and layer.metadata.get("lungkd_role") in OUTLINED_ROLES:
            outline(layer, fill)
            n += 1
    return n


def as_mask_data(mask) -> np.ndarray:
    """A result mask as layer data: uint8 while its labels leave room for EDIT_LABEL, else uint16."""
    mask = np.asarray(mask)
    dtype = np.uint8 if (mask.size == 0 or int(mask.max()) < EDIT_LABEL) else np.uint16
    return mask.astype(dtype, copy=True)


def _put(viewer, ct, role, model, add, data=None, meta=None):
    """This CT's layer of ``role``: updated in place when it is there with data of the same shape
    and type (``data``, ``meta``), else replaced by ``add()`` at the same place in the list.

    In place, no layer is taken out of the canvas and put back while it may be drawn."""
    old = find_layer(viewer, ct, role, model)
    if old is not None and data is not None:
        same = old.data.shape == data.shape and old.data.dtype == data.dtype
        if same:
            if old.data is not data:  # the same array (the probability): nothing to redraw
                old.data = data
            old.metadata.update(meta or {})
            return old
    index = viewer.layers.index(old) if old is not None else None
    if old is not None:
        viewer.layers.remove(old)
    layer = add()
    if index is not None:
        viewer.layers.move(viewer.layers.index(layer), index)
    return layer


def show_segmentation(
    viewer, ct_layer, model: str, seg, provenance: dict | None = None, fill=False, shown=None
):
    """Add (or replace) the model's editable mask, its own mask (hidden) and its probability
    (hidden) for the CT of ``ct_layer``; returns (mask layer, probability layer).

    ``shown``: what the editable mask holds (the model's mask with the user's edits carried
    over, see :func:`~napari_lungkd._napari.operating_point.carry_edits`); default the model's."""
    ct = ct_layer.metadata[CT_KEY]
    model_mask = as_mask_data(seg.mask)
    prov = dict(provenance or seg.provenance.to_dict())
    probability = np.asarray(seg.probability)
    prob = _put(
        viewer,
        ct,
        PROBABILITY,
        model,
        lambda: viewer.add_image(
            probability,
            name=probability_layer_name(model, ct),
            colormap="inferno",
            contrast_limits=(0.0, 1.0),
            blending="additive",
            visible=False,
            **aligned(ct_layer, metadata=meta_for(ct, PROBABILITY, model)),
        ),
        data=probability,
    )
    original = _put(
        viewer,
        ct,
        ORIGINAL,
        model,
        lambda: viewer.add_labels(
            model_mask.copy(),
            name=original_layer_name(model, ct),
            colormap=result_colormap(model),
            visible=False,
            **aligned(ct_layer, metadata=meta_for(ct, ORIGINAL, model)),
        ),
        data=model_mask.copy(),
    )
    original.editable = False
    meta = meta_for(ct, MASK, model, lungkd_model_mask=model_mask.copy(), lungkd_provenance=prov)
    editable = model_mask if shown is None else np.asarray(shown)
    mask = _put(
        viewer,
        ct,
        MASK,
        model,
        lambda: viewer.add_labels(
            editable,
            name=mask_layer_name(model, ct),
            colormap=result_colormap(model),
            **aligned(ct_layer, metadata=meta),
        ),
        data=editable,
        meta=meta,
    )
    mask.selected_label = EDIT_LABEL  # the brush paints corrections in their own colour
    for layer in (original, mask):
        outline(layer, fill)
    return mask, prob


def show_candidates(viewer, ct_layer, model: str, scores, threshold: float, accepted=()):
    """Add or update the hidden points layer of every candidate of ``model``'s run on this CT,
    each with its ``score`` (shown beside it) and whether it passes ``threshold`` (``kept``):
    kept ones in the model's colour, dropped ones grey, those ``accepted`` by hand (indices) in
    the edit colour. ``scores``: an :class:`~napari_lungkd._napari.operating_point.CandidateScores`.
    """
    ct = ct_layer.metadata[CT_KEY]
    kept = scores.kept(threshold)
    hand = np.isin(np.arange(len(scores)), list(accepted)) & ~kept
    features = {"score": np.asarray(scores.scores, dtype=float), "kept": kept, "accepted": hand}
    colours = [COLOURS.get(model, COLOURS["edited"]) if k else DROPPED_COLOUR for k in kept]
    colours = [COLOURS["edited"] if h else c for c, h in zip(colours, hand)]
    extra = {"lungkd_score": scores.score_name, "lungkd_threshold": float(threshold)}
    old = find_layer(viewer, ct, CANDIDATES, model)
    if (
        old is not None
        and len(old.data) == len(scores)
        and np.allclose(old.data, scores.centres_zyx)
    ):
        old.features = features
        if len(scores):
            old.border_color = colours
            old.text.color = colours  # napari keeps one colour per point for the text too
        old.metadata.update(extra)
        old.refresh()
        return old
    remove_layers(viewer, [old])
    smallest, margin = CANDIDATE_RING_MM
    diameters = scores.diameters_mm if scores.diameters_mm is not None else np.zeros(len(scores))
    ring_mm = np.maximum(np.nan_to_num(np.asarray(diameters, float)) + margin, smallest)
    in_plane_mm = float(np.mean(ct.spacing_mm[1:]))  # napari sizes points in data units
    sizes = ring_mm / in_plane_mm
    above = float(np.max(sizes, initial=1.0)) / 2 + 2  # the score above the largest ring
    return viewer.add_points(
        scores.centres_zyx,
        ndim=3,
        name=candidates_layer_name(model, ct),
        features=features,
        text={
            "string": "{score:.2f}",
            "size": 9,
            "color": colours or "white",
            "anchor": "center",
            "translation": [0.0, -above, 0.0],
        },
        size=sizes if len(scores) else 1.0,
        face_color="transparent",
        border_color=colours or "white",
        border_width=0.06,
        border_width_is_relative=True,
        visible=False,  # at hand: tick it in the layer list to see what the point dropped
        **aligned(ct_layer, metadata=meta_for(ct, CANDIDATES, model, **extra)),
    )


def agreement_labels(student_mask, teacher_mask) -> np.ndarray:
    """uint8: 1 student only, 2 teacher only, 3 both, 0 neither."""
    s = np.asarray(student_mask) > 0
    t = np.asarray(teacher_mask) > 0
    out = np.zeros(s.shape, dtype=np.uint8)
    out[s & ~t] = STUDENT_ONLY
    out[t & ~s] = TEACHER_ONLY
    out[s & t] = BOTH
    return out


def show_disagreement(viewer, ct_layer, labels: np.ndarray, fill=False):
    """Add or update the student-only (1) / teacher-only (2) / both (3) layer of this CT."""
    ct = ct_layer.metadata[CT_KEY]
    labels = np.asarray(labels, dtype=np.uint8)
    layer = _put(
        viewer,
        ct,
        DISAGREEMENT,
        None,
        lambda: viewer.add_labels(
            labels,
            name=disagreement_name(ct),
            colormap=labels_colormap(DISAGREEMENT_COLOURS),
            visible=False,  # the two masks' outlines already show it; a click shows this
            **aligned(ct_layer, metadata=meta_for(ct, DISAGREEMENT)),
        ),
        data=labels,
    )
    outline(layer, fill)
    return layer


def remove_layers(viewer, layers) -> None:
    """Remove these layers (layer objects or names) where still present."""
    for layer in layers:
        if layer is not None and layer in viewer.layers:
            viewer.layers.remove(layer)


def set_side_by_side(viewer, ct_layer, on: bool) -> None:
    """Grid view with two cells: CT + student mask | CT + teacher mask (a second CT layer shares
    the data, napari cannot show one layer in two cells). Off: back to one view, the student's
    mask on top. The camera is left alone: the caller frames the view (see :mod:`framing`)."""
    from napari_lungkd._napari.framing import grid_of

    ct = ct_layer.metadata[CT_KEY]
    grid = grid_of(viewer)
    student, teacher = (find_layer(viewer, ct, MASK, m) for m in ("student", "teacher"))
    if not on:
        grid.enabled = False
        remove_layers(viewer, [find_layer(viewer, ct, GRID_CT)])
        for layer in viewer.layers:  # show again what the grid hid
            if layer.metadata.pop(_HIDDEN_BY_GRID, False):
                layer.visible = True
        if student is not None:  # the mask being judged and edited stays on top
            viewer.layers.move(viewer.layers.index(student), len(viewer.layers))
        return
    copy = find_layer(viewer, ct, GRID_CT)
    if copy is None:
        copy = viewer.add_image(
            ct_layer.data,
            name=grid_ct_name(ct),
            colormap="gray",
            contrast_limits=ct_layer.contrast_limits,
            interpolation2d=ct_layer.interpolation2d,
            **aligned(ct_layer, metadata={"lungkd_role": GRID_CT}),
        )
    # keep only the two pairs in the grid: other layers are hidden while it is on
    order = [layer for layer in (ct_layer, student, copy, teacher) if layer is not None]
    for layer in viewer.layers:
        if layer not in order and layer.visible:
            layer.visible = False
            layer.metadata[_HIDDEN_BY_GRID] = True
    for layer in order:
        layer.visible = True
    for i, layer in enumerate(order):
        viewer.layers.move(viewer.layers.index(layer), i)
    grid.stride = 2
    grid.shape = (1, 2)
    grid.enabled = True
