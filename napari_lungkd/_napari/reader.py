"""napari reader for chest CT: a DICOM folder or file, NIfTI, MHD/MHA or NRRD -> one image layer.

``get_ct_reader(path)`` is cheap and returns None for anything that is not CT-like (an ``.xml``
file, a text file, a folder without DICOM files, a zarr store) so napari can try other readers.
For CT it returns :func:`read_ct`, which gives ``[ct_layer_data(ct)]``: the layer is named after the
patient and series, placed in patient LPS millimetres (scale = spacing, translate = origin), shown
in the lung window and carries the CtVolume in ``metadata["lungkd_ct"]`` (its ``source`` and
``metadata["series_folder"]`` say where it came from, for readers of files beside it).

Bad input never raises into the viewer: a :class:`~napari_lungkd.errors.LungKDError` becomes one
error notification, and the reader returns napari's "read, nothing to add" value ``[(None,)]`` so
napari adds nothing and raises nothing more. Loading warnings (missing slice, skipped file...)
become one warning notification.
"""

from __future__ import annotations

import os
from pathlib import Path

from napari_lungkd.io.sniff import is_image_file_name

_DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ".ima"}
_NOT_CT_SUFFIXES = {".xml", ".txt", ".csv", ".json", ".md", ".py", ".zarr", ".png", ".jpg", ".tif"}
_SCAN_LIMIT = 2000  # directory entries looked at before giving up on finding a DICOM file
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


def _has_dicom_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def _folder_has_dicom(folder: Path) -> bool:
    """Bounded walk: True as soon as one file looks like DICOM (suffix or DICM marker)."""
    if (
        folder.suffix.lower() == ".zarr"
        or (folder / ".zgroup").exists()
        or (folder / "zarr.json").exists()
    ):
        return False
    seen = 0
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            seen += 1
            if seen > _SCAN_LIMIT:
                return False
            p = Path(root) / name
            if p.suffix.lower() in _DICOM_SUFFIXES or (
                p.suffix.lower() not in _NOT_CT_SUFFIXES and _has_dicom_magic(p)
            ):
                return True
    return False


def get_ct_reader(path):
    """npe2 reader hook: :func:`read_ct` for a CT path, None for anything else."""
    p = _single_path(path)
    if p is None or not p.exists():
        return None
    if p.is_dir():
        return read_ct if _folder_has_dicom(p) else None
    if is_image_file_name(p):
        return read_ct
    suffix = p.suffix.lower()
    if suffix in _DICOM_SUFFIXES:
        return read_ct
    if suffix in _NOT_CT_SUFFIXES:
        return None
    return read_ct if _has_dicom_magic(p) else None


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
