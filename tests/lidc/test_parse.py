"""Parsing LIDC XML: structure, tolerance of real-file quirks, refusal of radiograph and unsafe XML."""

from __future__ import annotations

import io

import pytest
from lidc_xml_builders import (
    CHARS,
    SERIES,
    lidc_xml,
    nodule_xml,
    roi_xml,
    session_xml,
    square,
    two_reader_xml,
)

from napari_lungkd.errors import LidcXmlError
from napari_lungkd.lidc import parse_lidc_xml, read_lidc_xml


def test_structure_of_a_two_reader_file():
    read = parse_lidc_xml(two_reader_xml().encode())
    assert read.series_uid == SERIES
    assert read.n_readers == 2
    s1, s2 = read.sessions
    assert [n.nodule_id for n in s1.large_nodules] == ["N1"]
    assert [n.nodule_id for n in s1.small_nodules] == ["small"]
    assert s1.small_nodules[0].point_xyz == (300.0, 300.0, -20.0)
    assert s1.non_nodules[0].x == 50 and s1.non_nodules[0].y == 60
    assert s1.non_nodules[0].z_mm == -30.0
    n1 = s1.large_nodules[0]
    assert n1.characteristics == CHARS
    assert [r.z_mm for r in n1.rois] == [-10.0, -12.5]  # trailing space tolerated
    assert n1.rois[0].points_xy[0].tolist() == [100, 100]  # x = column, y = row
    assert n1.rois[0].inclusion is True
    assert [(r, m.nodule_id) for r, m in read.annotations()] == [(0, "N1"), (1, "IL057")]
    assert read.z_positions_mm().tolist() == [-30.0, -20.0, -12.5, -10.0]


@pytest.mark.parametrize("ns", ['xmlns="http://www.nih.gov"', "", 'xmlns="urn:something-else"'])
def test_namespace_agnostic(ns):
    read = parse_lidc_xml(two_reader_xml(ns=ns).encode())
    assert [len(s.large_nodules) for s in read.sessions] == [1, 1]


def test_prefixed_namespace():
    text = two_reader_xml(ns='xmlns:lidc="http://www.nih.gov"')
    text = text.replace("<", "<lidc:").replace("<lidc:/", "</lidc:").replace("<lidc:?", "<?")
    read = parse_lidc_xml(text.encode())
    assert [len(s.large_nodules) for s in read.sessions] == [1, 1]


def test_path_bytes_and_file_object_agree(tmp_path):
    text = two_reader_xml()
    p = tmp_path / "a.xml"
    p.write_text(text)
    by_path = read_lidc_xml(p)
    by_bytes = read_lidc_xml(text.encode())
    by_stream = parse_lidc_xml(io.BytesIO(text.encode()), name="member.xml")
    for r in (by_bytes, by_stream):
        assert [len(s.nodules) for s in r.sessions] == [len(s.nodules) for s in by_path.sessions]
    assert by_stream.source == "member.xml"


def test_empty_characteristics_and_empty_session():
    s1 = session_xml([nodule_xml("pt", [roi_xml(-5.0, [(10, 10)])], chars={})])
    s2 = session_xml()
    read = parse_lidc_xml(lidc_xml([s1, s2]).encode())
    assert read.sessions[0].nodules[0].characteristics == {}
    assert not read.sessions[0].nodules[0].is_large
    assert read.sessions[1].nodules == () and read.annotations() == []


def test_zero_characteristic_is_not_a_large_nodule():
    chars = dict(CHARS, subtlety=0)
    read = parse_lidc_xml(lidc_xml([session_xml([nodule_xml("x", [], chars=chars)])]).encode())
    assert not read.sessions[0].nodules[0].is_large


def test_radiograph_read_is_refused_with_reason():
    text = (
        '<?xml version="1.0"?><IdriReadMessage xmlns="http://www.nih.gov/idri">'
        "<ResponseHeader/></IdriReadMessage>"
    )
    with pytest.raises(LidcXmlError, match="cxr.xml: this is a chest-radiograph read"):
        parse_lidc_xml(text.encode(), name="cxr.xml")


def test_billion_laughs_is_refused():
    text = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        "<LidcReadMessage>&lol2;</LidcReadMessage>"
    )
    with pytest.raises(LidcXmlError, match="bomb.xml: refused unsafe XML"):
        parse_lidc_xml(text.encode(), name="bomb.xml")


def test_external_entity_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read me")
    text = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        "<LidcReadMessage><ResponseHeader><Version>&x;</Version></ResponseHeader></LidcReadMessage>"
    )
    p = tmp_path / "xxe.xml"
    p.write_text(text)
    with pytest.raises(LidcXmlError, match="xxe.xml: refused unsafe XML"):
        read_lidc_xml(p)


@pytest.mark.parametrize(
    "text, reason",
    [
        (b"this is not xml", "not well-formed XML"),
        (b"<Other/>", "is not an LIDC CT read"),
    ],
)
def test_other_bad_input(text, reason):
    with pytest.raises(LidcXmlError, match=reason):
        parse_lidc_xml(text, name="bad.xml")


def test_missing_file(tmp_path):
    with pytest.raises(LidcXmlError, match="no such LIDC XML file"):
        read_lidc_xml(tmp_path / "nope.xml")


def test_bad_number_names_the_place():
    s = session_xml([nodule_xml("N9", [roi_xml(0.0, square(1, 1, 3), z_text="abc")])])
    with pytest.raises(LidcXmlError, match="reader 1, nodule 'N9'.*imageZposition 'abc'"):
        parse_lidc_xml(lidc_xml([s]).encode(), name="f.xml")
