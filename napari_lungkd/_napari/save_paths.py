"""Where the widget proposes to save a mask: a results folder outside the source data, named by
patient and series; and whether a path would write into the CT's own source folder.

The default root is ``~/napari-lungkd-results`` (``$LUNGKD_RESULTS_DIR`` overrides it); a CT's
results go to ``<root>/<PatientID>_s<Series>/`` and its files are called
``<PatientID>_s<Series>_<what>.nii.gz`` (the CLI's result-folder name,
:func:`napari_lungkd.cli.cases.result_name`, so both faces name a CT the same way). A DICOM
series folder (or the folder of a NIfTI file) is the user's source data: the widget never writes
into it without asking (:func:`in_source_folder`).
"""

from __future__ import annotations

import os
from pathlib import Path

RESULTS_ENV = "LUNGKD_RESULTS_DIR"


def results_root() -> Path:
    """``$LUNGKD_RESULTS_DIR``, else ``~/napari-lungkd-results``."""
    env = os.environ.get(RESULTS_ENV)
    return Path(env).expanduser() if env else Path.home() / "napari-lungkd-results"


def case_name(ct) -> str:
    """``LIDC-IDRI-0001_s3000566``: patient ID and series label (the CLI's result name)."""
    from napari_lungkd.cli.cases import result_name

    fallback = Path(getattr(ct, "source", "") or "ct").name.split(".")[0] or "ct"
    return result_name(ct, fallback)


def default_mask_path(ct, what: str) -> Path:
    """The proposed file for ``what`` (``student``, ``teacher_edited``...) of ``ct``."""
    name = case_name(ct)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in what).strip("_") or "mask"
    return results_root() / name / f"{name}_{safe}.nii.gz"


def source_folders(ct) -> list[tuple[Path, bool]]:
    """(folder, with its subfolders) the CT was read from: a DICOM series folder with what is
    below it; the folder of a single file (NIfTI...) itself only."""
    out: list[tuple[Path, bool]] = []
    src = str(getattr(ct, "source", "") or "")
    if src:
        p = Path(src).expanduser()
        out.append((p, True) if p.is_dir() else (p.parent, False))
    meta = getattr(ct, "metadata", None) or {}
    if meta.get("series_folder"):
        out.append((Path(meta["series_folder"]).expanduser(), True))
    return [(folder.resolve(), below) for folder, below in out]


def in_source_folder(path, ct) -> bool:
    """True when ``path`` would be written into a folder the CT was read from."""
    target = Path(path).expanduser().resolve()
    return any(
        target.parent == folder or (below and folder in target.parents)
        for folder, below in source_folders(ct)
    )
