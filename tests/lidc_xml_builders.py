"""Builders of small LIDC XML documents for tests (readers, nodules, outlines, non-nodules), and a
fake CT whose slices carry the SOP UIDs those documents point at."""

from __future__ import annotations

import numpy as np

from napari_lungkd.ct import CtVolume
from napari_lungkd.lidc import CHARACTERISTIC_NAMES

SERIES = "1.2.826.0.1.3680043.8.498.1"
CHARS = dict(zip(CHARACTERISTIC_NAMES, (5, 1, 6, 3, 3, 3, 4, 5, 5)))


def square(x0, y0, side):
    """Edge points of an axis-aligned square outline, 8-connected, clockwise, closed."""
    x1, y1 = x0 + side, y0 + side
    pts = [(x, y0) for x in range(x0, x1)] + [(x1, y) for y in range(y0, y1)]
    pts += [(x, y1) for x in range(x1, x0, -1)] + [(x0, y) for y in range(y1, y0, -1)]
    return pts + [pts[0]]


def roi_xml(z, points, sop=None, inclusion=True, z_text=None):
    edges = "".join(
        f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>" for x, y in points
    )
    sop = sop if sop is not None else f"{SERIES}.{int(round(z * 10)) + 10000}"
    return (
        f"<roi><imageZposition>{z_text or f'{z:.6f} '}</imageZposition>"
        f"<imageSOP_UID>{sop}</imageSOP_UID>"
        f"<inclusion>{'TRUE' if inclusion else 'FALSE'}</inclusion>{edges}</roi>"
    )


def nodule_xml(nid, rois, chars=CHARS):
    if chars is None:
        block = ""
    elif chars == {}:
        block = "<characteristics/>"
    else:
        block = "<characteristics>" + "".join(f"<{k}>{v}</{k}>" for k, v in chars.items())
        block += "</characteristics>"
    return f"<unblindedReadNodule><noduleID>{nid}</noduleID>{block}{''.join(rois)}</unblindedReadNodule>"


def non_nodule_xml(nid, z, x, y):
    return (
        f"<nonNodule><nonNoduleID>{nid}</nonNoduleID><imageZposition>{z}</imageZposition>"
        f"<imageSOP_UID>{SERIES}.{int(round(z * 10)) + 10000}</imageSOP_UID>"
        f"<locus><xCoord>{x}</xCoord><yCoord>{y}</yCoord></locus></nonNodule>"
    )


def session_xml(nodules=(), non_nodules=(), rid="reader"):
    return (
        f"<readingSession><annotationVersion>3.12</annotationVersion>"
        f"<servicingRadiologistID>{rid}</servicingRadiologistID>"
        f"{''.join(nodules)}{''.join(non_nodules)}</readingSession>"
    )


def lidc_xml(sessions, series=SERIES, ns='xmlns="http://www.nih.gov"', date="2008-08-18"):
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<LidcReadMessage uid="1.2.3" {ns}>'
        f"<ResponseHeader><Version>1.8.1</Version><SeriesInstanceUid>{series}</SeriesInstanceUid>"
        f"<StudyInstanceUID>1.2.3.4</StudyInstanceUID><DateService>{date}</DateService>"
        f"<TimeService>02:05:51</TimeService></ResponseHeader>{''.join(sessions)}</LidcReadMessage>"
    )


def two_reader_xml(**kw):
    s1 = session_xml(
        [
            nodule_xml(
                "N1", [roi_xml(-10.0, square(100, 100, 4)), roi_xml(-12.5, square(100, 100, 4))]
            ),
            nodule_xml("small", [roi_xml(-20.0, [(300, 300)])], chars=None),
        ],
        [non_nodule_xml("nn1", -30.0, 50, 60)],
    )
    s2 = session_xml([nodule_xml("IL057", [roi_xml(-10.0, square(101, 101, 4))])])
    return lidc_xml([s1, s2], **kw)


Z = [-15.0, -12.5, -10.0, -7.5, -5.0]


def fake_ct(n_yx=256, series=SERIES):
    uids = tuple(f"{SERIES}.{int(round(z * 10)) + 10000}" for z in Z)
    return CtVolume(
        hu=np.zeros((len(Z), n_yx, n_yx), dtype=np.int16),
        spacing_mm=(2.5, 0.5, 0.5),
        origin_mm=(-64.0, -64.0, Z[0]),
        sop_uids=uids,
        z_positions_mm=np.array(Z),
        series_uid=series,
        source="fake",
    )
