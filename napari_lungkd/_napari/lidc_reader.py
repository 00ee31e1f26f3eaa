"""napari reader for LIDC-IDRI reading XMLs: one Labels layer per reader and a consensus layer.

The layers sit on the CT already open in the viewer whose series UID the XML names (its scale,
translate and ``metadata["lungkd_ct"]`` via :func:`napari_lungkd._napari.layers.aligned_kwargs`).
With no such CT the XML-only grid is used (512x512 pixels of unknown size, the XML's own z
values) and a notification says so. A chest-radiograph read or unsafe XML is refused with the
core's one-sentence :class:`~napari_lungkd.errors.LidcXmlError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

READER_PREFIX = "LIDC reader"
NOTHING = [(None,)]  # napari's sentinel: the path was handled and there is no layer to add
CONSENSUS_PREFIX = "LIDC consensus"


def get_lidc_reader(path):
    """npe2 reader hook: a reader function for one LIDC ``.xml`` file, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(str(path))
    if p.suffix.lower() != ".xml" or not p.is_file():
        return None
    from napari_lungkd.lidc.files import sniff_lidc_xml

    kind, _ = sniff_lidc_xml(p)
    if kind is None:  # some other XML: let another reader try
        return None
    return read_lidc_layers


def find_ct_layer(viewer, series_uid: str | None):
    """The CT image layer in ``viewer`` of series ``series_uid`` (None if there is none)."""
    from napari.layers import Image

    from napari_lungkd._napari.layers import ct_of

    if viewer is None or not series_uid:
        return None
    for layer in viewer.layers:
        ct = ct_of(layer) if isinstance(layer, Image) else None
        if ct is not None and ct.series_uid == series_uid:
            return layer
    return None


def consensus_metadata(lidc) -> dict:
    """What the consensus layer carries about its level and nodules (changes with the level)."""
    return {
        "lungkd_role": "lidc consensus",
        "lungkd_level": lidc.level,
        "lungkd_xml": Path(lidc.read.source).name,
        "lungkd_nodules": [n.to_dict() for n in lidc.nodules],
    }


def reader_colour(reader: int) -> str:
    """Reader ``reader`` (0-based): one of the readers' blues (see :data:`result_layers.LEGEND`)."""
    from napari_lungkd._napari.result_layers import READER_COLOURS

    return READER_COLOURS[reader % len(READER_COLOURS)]


def _labels_tuples(lidc, base_kwargs: dict, consensus=None, ct=None) -> list:
    """Layer tuples: reader ``r`` as label ``r + 1`` in its colour, then the consensus (nodule i = i+1).
    On a CT the names say whose they are (``LIDC-IDRI-0001 · LIDC reader 1``)."""
    from napari_lungkd._napari.result_layers import COLOURS, labels_colormap, title

    out = []
    meta = dict(base_kwargs.get("metadata", {}))
    xml_name = Path(lidc.read.source).name
    for r, vol in enumerate(lidc.reader_volumes()):
        kwargs = dict(base_kwargs)
        kwargs["metadata"] = {
            **meta,
            "lungkd_role": "lidc reader",
            "lungkd_reader": r + 1,
            "lungkd_xml": xml_name,
        }
        name = f"{READER_PREFIX} {r + 1}"
        kwargs["name"] = title(ct, name) if ct is not None else name
        kwargs["colormap"] = labels_colormap({r + 1: reader_colour(r)})
        # each reader its own label value (and colour): a voxel picked tells whose outline it is
        out.append((vol.astype(np.uint8) * np.uint8(r + 1), kwargs, "labels"))
    kwargs = dict(base_kwargs)
    kwargs["metadata"] = {**meta, **consensus_metadata(lidc)}
    level_name = f"{CONSENSUS_PREFIX} {round(lidc.level * 100):d}%"
    kwargs["name"] = title(ct, CONSENSUS_PREFIX) if ct is not None else level_name
    kwargs["colormap"] = labels_colormap({}, default=COLOURS["consensus"])
    out.append((lidc.consensus_labels() if consensus is None else consensus, kwargs, "labels"))
    return out


def layers_on_ct(lidc, ct, consensus=None) -> list:
    """Layer data tuples (one Labels per reader + consensus) for annotations already on ``ct``'s grid."""
    from napari_lungkd._napari.layers import aligned_kwargs

    return _labels_tuples(lidc, aligned_kwargs(ct), consensus, ct=ct)


def show_lidc(viewer, lidc, ct, consensus=None, fill: bool = False) -> list:
    """Put ``lidc`` (on ``ct``'s grid) into ``viewer``: the layers this CT already has for the
    readers and the consensus are reused (data and metadata replaced, drawn as outlines or filled
    as ``fill`` says), missing ones are added; readers beyond this XML's are removed. Returns the
    layers."""
    from napari.layers import Layer

    from napari_lungkd._napari.result_layers import find_layer, outline, remove_layers

    tuples = layers_on_ct(lidc, ct, consensus)
    shown = []
    for data, kwargs, kind in tuples:
        meta = kwargs["metadata"]
        old = next(
            (
                layer
                for layer in viewer.layers
                if layer.metadata.get("lungkd_ct") is ct
                and layer.metadata.get("lungkd_role") == meta["lungkd_role"]
                and layer.metadata.get("lungkd_reader") == meta.get("lungkd_reader")
            ),
            None,
        )
        if old is not None and old.data.shape == data.shape:
            old.data = data
            old.metadata.update(meta)
            outline(old, fill)  # the sample's layers (no outline in a layer tuple) included
            shown.append(old)
            continue
        layer = viewer.add_layer(Layer.create(data, kwargs, kind))
        outline(layer, fill)
        shown.append(layer)
    n = len(tuples) - 1
    extra = [
        layer
        for layer in viewer.layers
        if layer.metadata.get("lungkd_ct") is ct
        and layer.metadata.get("lungkd_role") == "lidc reader"
        and int(layer.metadata.get("lungkd_reader") or 0) > n
    ]
    remove_layers(viewer, extra)
    consensus_layer = find_layer(viewer, ct, "lidc consensus")
    readers = [viewer.layers.index(layer) for layer in shown[:-1]]
    if consensus_layer is not None and readers:  # the consensus under the readers' outlines
        here = viewer.layers.index(consensus_layer)
        if here > min(readers):
            viewer.layers.move(here, min(readers))
    return shown


def lidc_layers_for_ct(ct, xml_path, level: float = 0.5, include_edges: bool = False) -> list:
    """Layer data tuples (one Labels per reader + consensus) for ``xml_path`` on ``ct``'s grid.

    ``xml_path`` may also be an already-read :class:`~napari_lungkd.lidc.parse.LidcRead`.
    """
    from napari_lungkd.lidc import annotate

    return layers_on_ct(annotate(xml_path, ct=ct, level=level, include_edges=include_edges), ct)


def lidc_layers_xml_only(xml_path, level: float = 0.5, include_edges: bool = False) -> list:
    """Layer data tuples on the XML-only grid: z in mm from the XML, pixels of unknown size."""
    from napari_lungkd.lidc import annotate

    lidc = annotate(xml_path, ct=None, level=level, include_edges=include_edges)
    z = np.asarray(lidc.grid.z_positions_mm, dtype=float)
    step = lidc.grid.slice_step_mm if z.size > 1 else 1.0
    base = {
        "scale": (abs(step) or 1.0, 1.0, 1.0),
        "translate": (float(z[0]) if z.size else 0.0, 0.0, 0.0),
        "metadata": {"lungkd_grid": "xml"},
    }
    return _labels_tuples(lidc, base)


def read_lidc_layers(path) -> list:
    """Read one LIDC XML into layers, on the matching open CT if there is one.

    Bad input (a radiograph read, unsafe XML...) -> one error notification and no layer.
    """
    import napari
    from napari.utils.notifications import show_error, show_info, show_warning

    from napari_lungkd.errors import LungKDError
    from napari_lungkd.lidc import read_lidc_xml

    if isinstance(path, (list, tuple)):
        path = path[0]
    name = Path(path).name
    try:
        read = read_lidc_xml(path)
        viewer = napari.current_viewer()
        layer = find_ct_layer(viewer, read.series_uid)
        if layer is not None:
            from napari_lungkd.lidc import annotate

            ct = layer.metadata["lungkd_ct"]
            # opened again: the CT's reader layers are reused, not duplicated
            show_lidc(viewer, annotate(read, ct=ct), ct)
            show_info(f"{name}: {read.n_readers} readers placed on {ct.name}")
            return NOTHING
        layers = lidc_layers_xml_only(read)
    except LungKDError as exc:
        show_error(str(exc))
        return NOTHING
    show_warning(
        f"{name}: no CT of series {read.series_uid} is open, so the outlines are shown on the "
        "XML's own 512x512 grid (z from the XML, pixel size unknown); open the CT first to align them"
    )
    return layers
