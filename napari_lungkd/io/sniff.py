"""What counts as a CT input: the one table that load_ct, the napari reader and the CLI share.

:func:`sniff` says what a path is as CT input, cheaply (names first, then at most 132 header bytes
per file, stopping at the first DICOM file), so the napari reader can call it on every drop:

* ``"image_file"``: a NIfTI / MetaImage / NRRD file, by its suffix (:data:`IMAGE_FILE_SUFFIXES`);
* ``"dicom_file"``: a file named like DICOM (``.dcm``, ``.ima``...) or starting like DICOM
  (the DICM marker after the 128-byte preamble, or, without a preamble, a first tag of group
  0x0002 or 0x0008);
* ``"dicom_folder"``: a folder holding such a file anywhere below it;
* ``"not_ct"``: anything else, with ``reason``, one sentence naming the path.

:func:`find_cases` lists the CTs under a folder for batch work: every folder that holds DICOM
files itself is one case, and every image file is one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

IMAGE_FILE_SUFFIXES = (".nii", ".nii.gz", ".mhd", ".mha", ".nrrd")
"""File names that :func:`load_ct` reads with SimpleITK."""
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", ".ima")
"""File names taken as DICOM without reading them (the loader explains if they are not)."""
NOT_CT_SUFFIXES = (
    ".xml", ".txt", ".csv", ".json", ".md", ".py", ".png", ".jpg", ".tif", ".zarr", ".raw", ".zraw"
)  # fmt: skip
"""File names never read as DICOM: companions of a CT (reader XMLs, notes, pictures, MHD pixels)."""
SCAN_LIMIT = 5000
"""Files looked at in a folder before giving up on finding a DICOM file (a drop of ~ or /)."""

IMAGE_FILE, DICOM_FILE, DICOM_FOLDER, NOT_CT = "image_file", "dicom_file", "dicom_folder", "not_ct"


@dataclass(frozen=True)
class CtInput:
    """What :func:`sniff` found at ``path``; ``reason`` says why it is not CT (kind ``not_ct``)."""

    kind: str
    path: Path
    reason: str | None = None

    @property
    def is_ct(self) -> bool:
        return self.kind != NOT_CT


def is_image_file_name(path) -> bool:
    """True when ``path`` names a NIfTI, MetaImage or NRRD file (by its suffix)."""
    return str(path).lower().endswith(IMAGE_FILE_SUFFIXES)


def looks_like_dicom_head(head: bytes) -> bool:
    """True for the first 132 bytes of a DICOM file: the DICM marker, or DICOM tags without it."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    # no preamble: the first tag's group is 0x0002 (file meta) or 0x0008 (either byte order)
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


def _not_a_ct_file(path: Path) -> str:
    return (
        f"{path} is not a CT image file: it is not DICOM, and its name does not end in "
        ".nii, .nii.gz, .mhd, .mha or .nrrd."
    )


def _file_kind(path: Path) -> str | None:
    """IMAGE_FILE / DICOM_FILE by name or header; None for a file that is not CT.

    Raises OSError when a file whose name says nothing cannot be opened.
    """
    name = path.name.lower()
    if name.endswith(IMAGE_FILE_SUFFIXES):
        return IMAGE_FILE
    if name.endswith(DICOM_SUFFIXES):
        return DICOM_FILE
    if name.endswith(NOT_CT_SUFFIXES):
        return None
    with open(path, "rb") as fh:
        head = fh.read(132)
    return DICOM_FILE if looks_like_dicom_head(head) else None


def _is_zarr(folder: Path) -> bool:
    return (
        folder.name.lower().endswith(".zarr")
        or (folder / ".zgroup").exists()
        or (folder / "zarr.json").exists()
    )


def _is_dicom_file(path: Path) -> bool:
    try:
        return _file_kind(path) == DICOM_FILE
    except OSError:
        return False


def sniff(path) -> CtInput:
    """Say what ``path`` is as CT input (see the module docstring); never raises on bad input."""
    path = Path(os.fspath(path)).expanduser()
    if not path.exists():
        return CtInput(NOT_CT, path, f"{path} does not exist.")
    if path.is_dir():
        return _sniff_folder(path)
    try:
        kind = _file_kind(path)
    except OSError as exc:
        return CtInput(NOT_CT, path, f"{path} cannot be read ({exc.strerror or exc}).")
    if kind is None:
        return CtInput(NOT_CT, path, _not_a_ct_file(path))
    return CtInput(kind, path)


def _sniff_folder(folder: Path) -> CtInput:
    if _is_zarr(folder):
        return CtInput(NOT_CT, folder, f"Folder {folder} is a zarr store, not a CT series.")
    seen: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(f for f in files if not f.startswith(".")):
            path = Path(root) / name
            if _is_dicom_file(path):
                return CtInput(DICOM_FOLDER, folder)
            seen.append(path)
            if len(seen) >= SCAN_LIMIT:
                return CtInput(
                    NOT_CT,
                    folder,
                    f"Folder {folder} holds no DICOM file among its first {SCAN_LIMIT} files.",
                )
    if not seen:
        return CtInput(NOT_CT, folder, f"Folder {folder} is empty: there is no CT image in it.")
    images = [p for p in seen if is_image_file_name(p)]
    hint = f"; open one of its {len(images)} image file(s), e.g. {images[0].name}" if images else ""
    return CtInput(
        NOT_CT,
        folder,
        f"Folder {folder} holds no DICOM files ({len(seen)} other file(s), e.g. {seen[0].name}){hint}.",
    )


def find_cases(path) -> list[CtInput]:
    """The CTs at or under ``path``, for batch work, in a stable order.

    A CT file is one case. Under a folder, every folder that holds DICOM files itself is one case
    (so a folder of series folders gives one case per series), and every image file is one. A
    folder with no CT under it gives one ``not_ct`` entry saying why (or ``[]`` beyond the
    :data:`SCAN_LIMIT`).
    """
    info = sniff(path)
    if not info.path.is_dir() or _is_zarr(info.path):
        return [info]
    cases: list[CtInput] = []
    for root, dirs, files in os.walk(info.path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(root)
        if here != info.path and _is_zarr(here):
            dirs[:] = []
            continue
        has_dicom = False
        for name in sorted(f for f in files if not f.startswith(".")):
            p = here / name
            if is_image_file_name(p):
                cases.append(CtInput(IMAGE_FILE, p))
            elif not has_dicom and _is_dicom_file(p):
                has_dicom = True
                cases.append(CtInput(DICOM_FOLDER, here))
    return cases or [info]
