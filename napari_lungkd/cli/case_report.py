"""``report.json`` of a case folder: one file that keeps every model written into the folder.

``lungkd segment CT --model student --out D`` and then ``--model teacher --out D`` leave both
models' masks in ``D/<case>/``; the report keeps both models' entries (provenance, weights, timings,
nodules) and, from ``lungkd evaluate``, both models' scores. The latest run gives the CT block,
the LIDC block and the student-teacher comparison (which only a ``--model both`` run computes, so
an older one is dropped once either model is run again). A model run again replaces its own entry.
The read-merge-write holds a lock on the folder, so concurrent runs into one folder lose nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from napari_lungkd.files import write_json

REPORT_NAME = "report.json"
MODEL_KEYED = ("models", "scores")
"""Report entries keyed by model name: merged model by model."""
_RUN_ONLY = ("comparison",)
"""Entries that belong to one run and are never carried over from an earlier report."""


def write_report(out_dir: Path, report: dict) -> dict:
    """Write ``report`` as ``out_dir/report.json``, merged with the report already there (see the
    module doc); returns what was written."""
    path = Path(out_dir) / REPORT_NAME
    with _folder_lock(Path(out_dir)):
        merged = merge_reports(_read_report(path), report)
        write_json(path, merged)
    return merged


def merge_reports(earlier: dict | None, new: dict) -> dict:
    """``new`` with the models of ``earlier`` that ``new`` did not run kept, with their warnings."""
    if not earlier:
        return new
    ran = set(new.get("models") or {})
    kept = [m for m in earlier.get("models") or {} if m not in ran]
    merged = {k: v for k, v in earlier.items() if k not in _RUN_ONLY}
    merged.update(new)
    for key in MODEL_KEYED:
        old = {m: v for m, v in (earlier.get(key) or {}).items() if m not in ran}
        if old or key in new:
            merged[key] = {**old, **(new.get(key) or {})}
    warnings = list(new.get("warnings") or [])
    for w in earlier.get("warnings") or []:
        if any(str(w).startswith(f"{m}: ") for m in kept) and w not in warnings:
            warnings.append(w)
    if kept and _ct_key(earlier) != _ct_key(new):
        source = (earlier.get("ct") or {}).get("source")
        warnings += [f"{m}: written by an earlier run on another CT ({source})" for m in kept]
    merged["warnings"] = warnings
    return merged


def _ct_key(report: dict) -> tuple:
    ct = report.get("ct") or {}
    return ct.get("series_uid"), tuple(ct.get("shape_zyx") or ())


def _read_report(path: Path) -> dict | None:
    """The report at ``path``; None when there is none or it is not one (it is then replaced)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(doc, dict) and isinstance(doc.get("models"), dict):
        return doc
    return None


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (``flock`` on the folder itself: no lock file is left);
    where folders cannot be locked (Windows, some network file systems), no lock."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
