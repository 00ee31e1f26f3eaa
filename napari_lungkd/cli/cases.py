"""Cases of the CLI: which CTs an input holds, what their result folders are called, where their
LIDC XML is.

A result folder is named by the CT itself, not by the path typed: ``<PatientID>_s<SeriesNumber>``
(``LIDC-IDRI-0001_s3000566``; the series UID's last digits stand in for a missing SeriesNumber),
so the patient, study or series folder, or one DICOM file of the series, give the same name. A CT
without a patient ID (NIfTI, NRRD...) is named by its path below the input. Two cases of one run
that would share a name (even only on a case-insensitive file system) get ``-2``, ``-3``...
"""

from __future__ import annotations

import re
from pathlib import Path

_SUFFIXES = (".nii.gz", ".nii", ".mhd", ".mha", ".nrrd", ".dcm")
_XML_SCAN_LIMIT = 20000
"""Paths looked at below the input when searching for its LIDC XML."""


def find_cases(path) -> list[Path]:
    """The CTs under ``path`` (:func:`napari_lungkd.io.sniff.find_cases`), our own masks left out.

    A path with no CT in it raises :class:`CtLoadError` with the reason ``load_ct`` would give.
    """
    from napari_lungkd.errors import CtLoadError
    from napari_lungkd.io.sniff import find_cases as find_ct_inputs

    found = find_ct_inputs(path)
    refused = [c for c in found if not c.is_ct]
    if refused:
        raise CtLoadError(refused[0].reason)
    cases = [c.path for c in found if not c.path.name.endswith("_mask.nii.gz")]
    if not cases:
        raise CtLoadError(f"{path} holds no CT to segment, only masks that lungkd wrote.")
    return cases


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[-120:]


def case_name(case: Path, root: Path) -> str:
    """A short folder name from a path: its part below ``root``, long DICOM UIDs cut to their tail."""
    root = Path(root)
    rel = case.relative_to(root) if root in case.parents else Path(case.name)
    parts = [p if len(p) <= 24 else p[-10:] for p in rel.parts] or [case.name]
    text = "_".join(parts)
    for suffix in _SUFFIXES:
        if text.lower().endswith(suffix):
            text = text[: -len(suffix)]
    return _clean(text) or "case"


def series_label(ct) -> str:
    """A short label of the series: ``s`` + SeriesNumber, else ``s`` + the UID's last 6 digits."""
    meta = ct.metadata if isinstance(ct.metadata, dict) else {}
    number = str(meta.get("series_number") or "").strip()
    if number:
        return f"s{number}"
    uid = re.sub(r"\D", "", ct.series_uid or "")
    return f"s{uid[-6:]}" if uid else ""


def result_name(ct, fallback: str) -> str:
    """The result folder name of ``ct``: patient ID and series label, else ``fallback``."""
    patient = _clean(str(ct.patient_id or ""))
    if not patient:
        return fallback
    label = series_label(ct)
    return _clean(f"{patient}_{label}" if label else patient) or fallback


def unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when an earlier case of the run took it, so two
    inputs of one run never share a result folder. Names are compared without case, as a
    case-insensitive file system (macOS, Windows) would see them: ``A`` after ``a`` is ``A-2``."""
    out, k = name, 2
    while out.casefold() in taken:
        out, k = f"{name}-{k}", k + 1
    taken.add(out.casefold())
    return out


def find_xml_for(case: Path, ct) -> Path | None:
    """The LIDC XML of ``ct``'s series: beside the case, beside its DICOM files, or anywhere below
    the folder given (patient or study folder); the corrected read if several."""
    from napari_lungkd.lidc.files import lidc_xmls_in, pick_corrected_xml

    case = Path(case)
    folders: list[Path] = [case.parent if case.is_file() else case]
    meta = ct.metadata if isinstance(ct.metadata, dict) else {}
    for f in (meta.get("slice_files") or [])[:1]:
        folders.append(Path(f).parent)
    src = Path(ct.source) if ct.source else None
    if src is not None and src.exists():
        folders.append(src if src.is_dir() else src.parent)
    if case.is_dir():
        for i, p in enumerate(case.rglob("*.xml")):
            if i >= _XML_SCAN_LIMIT:
                break
            folders.append(p.parent)
    hits: list[Path] = []
    seen: set[Path] = set()
    for folder in folders:
        key = folder.resolve()
        if key in seen:
            continue
        seen.add(key)
        hits += [h for h in lidc_xmls_in(folder, ct.series_uid) if h not in hits]
    if not hits:
        return None
    return hits[0] if len(hits) == 1 else pick_corrected_xml(hits)
