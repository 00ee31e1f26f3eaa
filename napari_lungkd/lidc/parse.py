"""Parse an LIDC-IDRI reading XML (TCIA's ``LidcReadMessage``) into frozen dataclasses.

The file holds up to eight *reading sessions* (one per radiologist and read). Each session lists

* ``unblindedReadNodule``: a nodule mark. A *large* nodule (>= 3 mm) carries the nine
  characteristics and one ROI per slice (a closed or open polygon of edge points ``xCoord`` =
  column, ``yCoord`` = row; TCIA's edge points are the first pixels *outside* the nodule). A
  *small* nodule (< 3 mm) carries one ROI with a single point and no (or an empty) characteristics
  block. ROIs with ``inclusion`` FALSE cut holes into the nodule on their slice.
* ``nonNodule``: a single ``locus`` point on one slice.

Parsing is namespace-agnostic (the tags are compared without their ``{namespace}``), goes through
:mod:`defusedxml` (no DTDs, no entities, no external references) and tolerates what real files hold:
numbers with trailing spaces, open contours, several ROIs of one nodule on one slice, empty
sessions, empty ``<characteristics/>``. A chest-radiograph read (``IdriReadMessage``) and unsafe
or malformed XML are refused with :class:`~napari_lungkd.errors.LidcXmlError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_lungkd.errors import LidcXmlError
from napari_lungkd.lidc.xml_source import (
    check_roi_count,
    local_name,
    parse_root,
    read_source,
)

CHARACTERISTIC_NAMES = (
    "subtlety",
    "internalStructure",
    "calcification",
    "sphericity",
    "margin",
    "lobulation",
    "spiculation",
    "texture",
    "malignancy",
)

MAX_COORDINATE = 1_000_000
"""Edge points beyond this (pixels) belong to no CT; their outline is left out with a warning."""


@dataclass(frozen=True, eq=False)
class Roi:
    """One outline of a nodule on one slice."""

    z_mm: float
    """``imageZposition``: the slice position in mm (DICOM ImagePositionPatient z)."""
    sop_uid: str | None
    """``imageSOP_UID``: the SOPInstanceUID of the slice the outline was drawn on."""
    inclusion: bool
    """False: the area inside the outline is cut out of the nodule (a hole)."""
    points_xy: np.ndarray
    """Edge points, int32 ``(n, 2)``: column ``x``, row ``y`` (in file order; may be open)."""

    @property
    def n_points(self) -> int:
        return int(self.points_xy.shape[0])


@dataclass(frozen=True, eq=False)
class NoduleMark:
    """One reader's ``unblindedReadNodule``: a large nodule (outlined) or a small one (a point)."""

    nodule_id: str
    characteristics: dict[str, int]
    """The nine LIDC ratings present in the file (empty for small nodules)."""
    rois: tuple[Roi, ...]

    @property
    def is_large(self) -> bool:
        """pylidc's rule: a large (>= 3 mm) nodule has all its characteristics, none zero or blank."""
        return len(self.characteristics) == len(CHARACTERISTIC_NAMES) and all(
            v != 0 for v in self.characteristics.values()
        )

    @property
    def outline_rois(self) -> tuple[Roi, ...]:
        """ROIs that outline an area (more than one edge point); single points are stray marks."""
        return tuple(r for r in self.rois if r.n_points > 1)

    @property
    def point_xyz(self) -> tuple[float, float, float] | None:
        """Centre of all edge points as ``(x, y, z_mm)`` (the position of a small nodule)."""
        if not self.rois:
            return None
        pts = np.concatenate([r.points_xy for r in self.rois]).astype(float)
        if pts.size == 0:
            return None
        zs = [r.z_mm for r in self.rois]
        return float(pts[:, 0].mean()), float(pts[:, 1].mean()), float(np.mean(zs))


@dataclass(frozen=True)
class NonNodule:
    """A reader's ``nonNodule`` mark: a point that is not a nodule."""

    non_nodule_id: str
    z_mm: float
    sop_uid: str | None
    x: int
    y: int


@dataclass(frozen=True, eq=False)
class ReadingSession:
    """One reader's (radiologist's) session."""

    index: int
    """Position of the session in the file (0-based): the reader number used everywhere."""
    radiologist_id: str
    annotation_version: str
    nodules: tuple[NoduleMark, ...]
    non_nodules: tuple[NonNodule, ...]

    @property
    def large_nodules(self) -> tuple[NoduleMark, ...]:
        return tuple(n for n in self.nodules if n.is_large)

    @property
    def small_nodules(self) -> tuple[NoduleMark, ...]:
        return tuple(n for n in self.nodules if not n.is_large)


@dataclass(frozen=True, eq=False)
class LidcRead:
    """A parsed LIDC CT reading XML: its header and every reader's marks, as in the file."""

    source: str
    message_uid: str | None
    series_uid: str | None
    study_uid: str | None
    header: dict[str, str]
    """Every ``ResponseHeader`` field as text (Version, DateService, TimeService, ...)."""
    sessions: tuple[ReadingSession, ...]
    warnings: tuple[str, ...] = ()
    """What was left out while parsing (ROIs with non-finite or absurd numbers), one line each."""

    @property
    def n_readers(self) -> int:
        return len(self.sessions)

    def annotations(self) -> list[tuple[int, NoduleMark]]:
        """Every large-nodule annotation as ``(reader index, mark)``, in file order."""
        return [(s.index, n) for s in self.sessions for n in s.large_nodules]

    def z_positions_mm(self) -> np.ndarray:
        """Sorted unique z of every ROI and non-nodule in the file (the XML-only grid's slices)."""
        zs = {r.z_mm for s in self.sessions for n in s.nodules for r in n.rois}
        zs |= {m.z_mm for s in self.sessions for m in s.non_nodules}
        return np.array(sorted(zs), dtype=float)

    def sop_uid_by_z(self) -> dict[float, str]:
        """z -> SOPInstanceUID as written in the file (first seen wins)."""
        out: dict[float, str] = {}
        for s in self.sessions:
            for n in s.nodules:
                for r in n.rois:
                    if r.sop_uid:
                        out.setdefault(r.z_mm, r.sop_uid)
            for m in s.non_nodules:
                if m.sop_uid:
                    out.setdefault(m.z_mm, m.sop_uid)
        return out


# --------------------------------------------------------------------------------------------
# parsing


def _kids(el, name: str) -> list:
    return [c for c in el if local_name(c.tag) == name]


def _text(el, name: str) -> str | None:
    for c in el:
        if local_name(c.tag) == name:
            return (c.text or "").strip()
    return None


def _number(text: str | None, what: str, where: str) -> float:
    try:
        return float((text or "").strip())
    except ValueError:
        raise LidcXmlError(f"{where}: {what} {text!r} is not a number.") from None


def _parse_roi(el, where: str, notes: list[str]) -> Roi | None:
    """One ROI, or None (with a line in ``notes``) when its z or an edge point is NaN, infinite or
    beyond :data:`MAX_COORDINATE` (an outline no CT grid can hold)."""
    z = _number(_text(el, "imageZposition"), "imageZposition", where)
    if not np.isfinite(z):
        notes.append(f"{where}: an outline at imageZposition {z} was left out (not a finite z)")
        return None
    sop = _text(el, "imageSOP_UID") or None
    inclusion_text = (_text(el, "inclusion") or "TRUE").upper()
    if inclusion_text not in ("TRUE", "FALSE"):
        raise LidcXmlError(f"{where}: inclusion {inclusion_text!r} is neither TRUE nor FALSE.")
    xs: list[str] = []
    ys: list[str] = []
    for em in el:
        if not em.tag.endswith("edgeMap"):
            continue
        x = y = None
        for c in em:
            tag = c.tag
            if tag.endswith("xCoord"):
                x = c.text
            elif tag.endswith("yCoord"):
                y = c.text
        if x is None or y is None:
            raise LidcXmlError(f"{where}: an edgeMap lacks its xCoord or yCoord.")
        xs.append(x)
        ys.append(y)
    try:  # float() accepts the surrounding whitespace that some files carry
        arr = np.array([[float(a), float(b)] for a, b in zip(xs, ys)], dtype=float)
    except ValueError:
        raise LidcXmlError(f"{where}: an edge point is not a number.") from None
    arr = arr.reshape(-1, 2)
    if not np.isfinite(arr).all() or (np.abs(arr) > MAX_COORDINATE).any():
        bad = arr[~(np.isfinite(arr).all(axis=1) & (np.abs(arr) <= MAX_COORDINATE).all(axis=1))][0]
        notes.append(
            f"{where}: an outline at z {z:g} mm was left out (edge point "
            f"({bad[0]:g}, {bad[1]:g}) is not a pixel of any CT)"
        )
        return None
    arr = np.rint(arr).astype(np.int32)
    return Roi(z_mm=z, sop_uid=sop, inclusion=inclusion_text == "TRUE", points_xy=arr)


def _parse_characteristics(el) -> dict[str, int]:
    out: dict[str, int] = {}
    if el is None:
        return out
    for c in el:
        name = local_name(c.tag)
        text = (c.text or "").strip()
        if not text:
            continue
        try:
            out[name] = int(float(text))
        except (ValueError, OverflowError):  # "nan" and "inf" are not ratings
            continue
    return out


def _parse_session(el, index: int, label: str, notes: list[str]) -> ReadingSession:
    nodules = []
    non_nodules = []
    for child in el:
        tag = local_name(child.tag)
        if tag == "unblindedReadNodule":
            nid = _text(child, "noduleID") or ""
            where = f"{label}: reader {index + 1}, nodule {nid!r}"
            chars = _kids(child, "characteristics")
            parsed = (_parse_roi(r, where, notes) for r in _kids(child, "roi"))
            rois = tuple(r for r in parsed if r is not None)
            nodules.append(
                NoduleMark(
                    nodule_id=nid,
                    characteristics=_parse_characteristics(chars[0] if chars else None),
                    rois=rois,
                )
            )
        elif tag == "nonNodule":
            nid = _text(child, "nonNoduleID") or ""
            where = f"{label}: reader {index + 1}, non-nodule {nid!r}"
            locus = _kids(child, "locus")
            xf = yf = 0.0
            if locus:
                xf = _number(_text(locus[0], "xCoord"), "xCoord", where)
                yf = _number(_text(locus[0], "yCoord"), "yCoord", where)
            z = _number(_text(child, "imageZposition"), "imageZposition", where)
            values = np.array([xf, yf, z])
            if not np.isfinite(values).all() or (np.abs(values[:2]) > MAX_COORDINATE).any():
                notes.append(f"{where}: left out (its position {tuple(values)} is not finite)")
                continue
            x, y = int(round(xf)), int(round(yf))
            non_nodules.append(
                NonNodule(
                    non_nodule_id=nid,
                    z_mm=z,
                    sop_uid=_text(child, "imageSOP_UID") or None,
                    x=x,
                    y=y,
                )
            )
    return ReadingSession(
        index=index,
        radiologist_id=_text(el, "servicingRadiologistID") or "",
        annotation_version=_text(el, "annotationVersion") or "",
        nodules=tuple(nodules),
        non_nodules=tuple(non_nodules),
    )


def parse_lidc_xml(source, name: str | None = None) -> LidcRead:
    """Parse LIDC XML from a path, ``bytes`` or a binary file object (e.g. a tar member).

    ``name`` labels the data in error messages (defaults to the path or the stream's name).
    """
    data, label = read_source(source, name)
    root = parse_root(data, label)
    kind = local_name(root.tag)
    if kind == "IdriReadMessage":
        raise LidcXmlError(
            f"{label}: this is a chest-radiograph read (IdriReadMessage), not a CT read; "
            "it has no CT outlines to show."
        )
    if kind != "LidcReadMessage":
        raise LidcXmlError(
            f"{label}: root element <{kind}> is not an LIDC CT read (LidcReadMessage)."
        )
    check_roi_count(root, label)
    header: dict[str, str] = {}
    for h in _kids(root, "ResponseHeader"):
        for c in h:
            header[local_name(c.tag)] = (c.text or "").strip()
    notes: list[str] = []
    sessions = tuple(
        _parse_session(s, i, label, notes) for i, s in enumerate(_kids(root, "readingSession"))
    )
    series = header.get("SeriesInstanceUid") or header.get("SeriesInstanceUID") or None
    return LidcRead(
        source=label,
        message_uid=root.get("uid"),
        series_uid=series,
        study_uid=header.get("StudyInstanceUID") or header.get("StudyInstanceUid") or None,
        header=header,
        sessions=sessions,
        warnings=_summarise(notes),
    )


def _summarise(notes: list[str], most: int = 5) -> tuple[str, ...]:
    if len(notes) <= most:
        return tuple(notes)
    return (*notes[:most], f"... and {len(notes) - most} more outline(s) or mark(s) left out")


def read_lidc_xml(path) -> LidcRead:
    """Read an LIDC CT reading XML: every reader's annotations, as in the file.

    ``path`` may also be ``bytes`` or a binary file object. Raises
    :class:`~napari_lungkd.errors.LidcXmlError` for radiograph reads, unsafe or malformed XML.
    """
    return parse_lidc_xml(path)


def lidc_text(read: LidcRead) -> str:
    """A short human summary of a read (for the CLI and notifications)."""
    n_large = sum(len(s.large_nodules) for s in read.sessions)
    n_small = sum(len(s.small_nodules) for s in read.sessions)
    n_non = sum(len(s.non_nodules) for s in read.sessions)
    return (
        f"{Path(read.source).name}: {read.n_readers} readers, {n_large} nodule outlines, "
        f"{n_small} small-nodule points, {n_non} non-nodules"
    )
