"""Reading an LIDC XML's bytes safely: size, encoding, no DTDs or entities, a bound on ROIs.

The parser (:mod:`napari_lungkd.lidc.parse`) builds its dataclasses from the element tree that
:func:`parse_root` returns; everything that can make a file unsafe or too large to draw is
refused here first, with one :class:`~napari_lungkd.errors.LidcXmlError` sentence.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from napari_lungkd.errors import LidcXmlError

_MAX_BYTES = 64 * 1024 * 1024  # the largest real LIDC XML is about 2 MB
MAX_ROIS = 10_000
"""The most ROIs one file may hold: the 1,035 real CT reads hold at most 376; drawing is linear in
ROIs (about 0.3 ms each), so the bound keeps a crafted file to seconds."""


def local_name(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def read_source(source, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "<bytes>"
    if hasattr(source, "read"):
        data = source.read(_MAX_BYTES + 1)
        if isinstance(data, str):
            data = data.encode("utf-8")
        return data, name or str(getattr(source, "name", "<stream>"))
    path = Path(os.fspath(source))
    label = name or str(path)
    if not path.is_file():
        raise LidcXmlError(f"{label}: no such LIDC XML file.")
    if path.stat().st_size > _MAX_BYTES:
        raise LidcXmlError(f"{label}: file is larger than 64 MB; not an LIDC reading XML.")
    return path.read_bytes(), label


def parse_root(data: bytes, label: str):
    import defusedxml
    import defusedxml.ElementTree as SafeET

    if len(data) > _MAX_BYTES:
        raise LidcXmlError(f"{label}: data is larger than 64 MB; not an LIDC reading XML.")
    try:
        return SafeET.fromstring(data, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        kind = type(exc).__name__
        raise LidcXmlError(
            f"{label}: refused unsafe XML ({kind}: DTDs, entities and external references "
            "are not allowed in an LIDC file)."
        ) from None
    except SafeET.ParseError as exc:
        raise LidcXmlError(f"{label}: not well-formed XML ({exc}).") from None
    except (LookupError, ValueError) as exc:  # expat: unknown or multi-byte (UTF-7) encodings
        raise LidcXmlError(
            f"{label}: its XML declaration names an encoding that cannot be read ({exc}); "
            "LIDC files are UTF-8."
        ) from None


def check_roi_count(root, label: str) -> None:
    """Refuse a file with more than :data:`MAX_ROIS` outlines before any is parsed."""
    n_rois = sum(1 for el in root.iter() if local_name(el.tag) == "roi")
    if n_rois > MAX_ROIS:
        raise LidcXmlError(
            f"{label}: it holds {n_rois:,} outlines (ROIs), more than the {MAX_ROIS:,} allowed "
            "(real LIDC reads hold at most a few hundred); not an LIDC reading XML."
        )
