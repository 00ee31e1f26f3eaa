"""napari reader for chest CT: a DICOM folder or file, NIfTI, MHD/MHA or NRRD -> one image layer.

``get_ct_reader(path)`` asks :func:`~napari_lungkd.io.sniff.sniff` (the table ``load_ct`` and the
CLI use; cheap: names and a few header bytes) and returns None for anything that is not CT (an
``.xml`` file, a text file, a folder without DICOM files, a zarr store) so napari can try other
readers. For CT it returns :func:`read_ct`, which gives ``[ct_layer_data(ct)]``: the layer is named after the
patient and series, placed in patient LPS millimetres (scale = spacing, translate = origin), shown
in the lung window and carries the CtVolume in ``metadata["lungkd_ct"]`` (its ``source`` and
``metadata["series_folder"]`` say where it came from, for readers of files beside it).

Bad input never raises into the viewer: a :class:`~napari_lungkd.errors.LungKDError` becomes one
error notification, and the reader returns napari's "read, nothing to add" value ``[(None,)]`` so
napari adds nothing and raises nothing more. Loading warnings (missing slice, skipped file...)
become one warning notification.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from napari_lungkd.io.sniff import sniff

logger = logging.getLogger(__name__)

NOTHING = [(None,)]  # napari's sentinel: the reader handled the path and has no layer to add


def _single_path(path) -> Path | None:
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    try:
        return Path(os.fspath(path))
    except TypeError:
        return None


def get_ct_reader(path):
    """npe2 reader hook: :func:`read_ct` when ``sniff`` says the path is CT, else None."""
    p = _single_path(path)
    if p is None:
        return None
    info = sniff(p)
    if not info.is_ct:
        logger.debug("napari-lungkd declines %s: %s", p, info.reason)
        return None
    return read_ct


def read_ct(path) -> list:
    """Load the CT at ``path`` as layer data; bad input -> one notification and no layer."""
    from napari.utils.notifications import show_error, show_warning

    from napari_lungkd._napari.layers import ct_layer_data
    from napari_lungkd.errors import LungKDError
    from napari_lungkd.io import load_ct

    p = _single_path(path)
    if p is None:
        show_error("Open one CT at a time: a DICOM folder or file, NIfTI, MHD/MHA or NRRD.")
        return NOTHING
    try:
        ct = load_ct(p)
    except LungKDError as exc:
        show_error(str(exc))
        return NOTHING
    if ct.warnings:
        show_warning(f"{ct.name}: " + "; ".join(ct.warnings))
    return [ct_layer_data(ct)]
