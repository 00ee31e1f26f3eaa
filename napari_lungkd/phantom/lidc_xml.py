"""Write simulated reads as an LIDC XML file in TCIA's schema (``LidcReadMessage``, ``http://www.nih.gov``).

The layout copies real files such as LIDC-IDRI-0001's ``069.xml``: a ``ResponseHeader`` naming the
series and study, one ``readingSession`` per reader (``annotationVersion``,
``servicingRadiologistID``), ``unblindedReadNodule`` elements (``noduleID``, ``characteristics``
for nodules >= 3 mm only, one ``roi`` per slice and contour with ``imageZposition``,
``imageSOP_UID``, ``inclusion`` and ``edgeMap`` points: ``xCoord`` = column, ``yCoord`` = row) and
``nonNodule`` elements with a ``locus``.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

# the nine characteristics, in the order TCIA writes them (the parser reads the same list)
from napari_lungkd.lidc.parse import CHARACTERISTIC_NAMES as CHARACTERISTICS_ORDER


def lidc_xml_text(
    reads, z_positions_mm, sop_uids, series_uid: str, study_uid: str, message_uid: str
) -> str:
    """The XML document (str) for ``reads`` on a series with these slice positions and UIDs."""

    def zpos(k: int) -> str:
        return f"{float(z_positions_mm[k]):.6f}"

    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<LidcReadMessage uid="{escape(message_uid)}" xmlns="http://www.nih.gov" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.nih.gov  http://troll.rad.med.umich.edu/lidc/LidcReadMessage.xsd">',
        "<ResponseHeader>",
        "<Version>1.8.1</Version>",
        f"<MessageId>{int(message_uid.replace('.', '')[-9:])}</MessageId>",
        "<DateRequest>2000-01-01</DateRequest>",
        "<TimeRequest>12:00:00</TimeRequest>",
        "<RequestingSite>removed</RequestingSite>",
        "<ServicingSite>removed</ServicingSite>",
        "<TaskDescription>Second unblinded read</TaskDescription>",
        "<CtImageFile>removed</CtImageFile>",
        f"<SeriesInstanceUid>{series_uid}</SeriesInstanceUid>",
        "<DateService>2000-01-01</DateService>",
        "<TimeService>12:00:00</TimeService>",
        "<ResponseDescription>1 - Reading complete</ResponseDescription>",
        f"<StudyInstanceUID>{study_uid}</StudyInstanceUID></ResponseHeader>",
    ]
    for read in reads:
        out += [
            "<readingSession>",
            "    <annotationVersion>3.12</annotationVersion>",
            f"    <servicingRadiologistID>{escape(read.reader_id)}</servicingRadiologistID>",
        ]
        for ann in read.annotations:
            out += [
                "    <unblindedReadNodule>",
                f"      <noduleID>{escape(ann.nodule_id)}</noduleID>",
            ]
            if ann.characteristics is not None:
                out.append("      <characteristics>")
                for key in CHARACTERISTICS_ORDER:
                    out.append(f"        <{key}>{int(ann.characteristics[key])}</{key}>")
                out.append("      </characteristics>")
            for roi in ann.rois:
                out += [
                    "      <roi>",
                    f"        <imageZposition>{zpos(roi.z_index)}</imageZposition>",
                    f"        <imageSOP_UID>{sop_uids[roi.z_index]}</imageSOP_UID>",
                    f"        <inclusion>{'TRUE' if roi.inclusion else 'FALSE'}</inclusion>",
                ]
                for x, y in roi.points_xy:
                    out += [
                        "        <edgeMap>",
                        f"          <xCoord>{int(x)}</xCoord>",
                        f"          <yCoord>{int(y)}</yCoord>",
                        "        </edgeMap>",
                    ]
                out.append("      </roi>")
            out.append("    </unblindedReadNodule>")
        for non in read.non_nodules:
            out += [
                "    <nonNodule>",
                f"      <nonNoduleID>{escape(non.non_nodule_id)}</nonNoduleID>",
                f"      <imageZposition>{zpos(non.z_index)}</imageZposition>",
                f"      <imageSOP_UID>{sop_uids[non.z_index]}</imageSOP_UID>",
                "      <locus>",
                f"        <xCoord>{int(non.x)}</xCoord>",
                f"        <yCoord>{int(non.y)}</yCoord>",
                "      </locus>",
                "    </nonNodule>",
            ]
        out.append("  </readingSession>")
    out.append("</LidcReadMessage>")
    return "\n".join(out) + "\n"
