"""Rasterising outlines, clustering readers into nodules and consensus, on small synthetic XML."""

from __future__ import annotations

import math

import pytest
from lidc_xml_builders import (
    fake_ct,
    lidc_xml,
    nodule_xml,
    roi_xml,
    session_xml,
    square,
    two_reader_xml,
)

from napari_lungkd.lidc import (
    annotate,
    cluster_annotations,
    consensus,
    grid_for_ct,
    parse_lidc_xml,
    rasterise_annotation,
    rasterise_read,
    xml_grid,
)
from napari_lungkd.lidc.nodules import shared_voxels


def one_mark(rois, chars=True):
    kw = {} if chars else {"chars": None}
    read = parse_lidc_xml(lidc_xml([session_xml([nodule_xml("N", rois, **kw)])]).encode())
    return read, read.sessions[0].nodules[0]


def test_square_interior_excludes_edges_by_default():
    read, mark = one_mark([roi_xml(-10.0, square(100, 100, 4))])
    grid = xml_grid(read)
    m = rasterise_annotation(mark, grid)
    assert m.voxels == 9  # 3x3 strictly inside a 5x5 outline
    assert m.to_volume()[0, 101:104, 101:104].all()
    assert not m.to_volume()[0, 100, 100]  # an edge point: first pixel outside the nodule
    assert rasterise_annotation(mark, grid, include_edges=True).voxels == 25


def test_open_contour_closing_segment_is_outline():
    pts = square(100, 100, 4)[:13]  # three sides drawn, the fourth left open
    read, mark = one_mark([roi_xml(-10.0, pts)])
    m = rasterise_annotation(mark, xml_grid(read))
    assert m.voxels == 9
    assert rasterise_annotation(mark, xml_grid(read), include_edges=True).voxels == 25


def test_exclusion_roi_cuts_a_hole():
    read, mark = one_mark(
        [roi_xml(-10.0, square(100, 100, 6)), roi_xml(-10.0, square(102, 102, 2), inclusion=False)]
    )
    m = rasterise_annotation(mark, xml_grid(read))
    # 5x5 interior minus the 3x3 hole (hole interior and its outline)
    assert m.voxels == 25 - 9
    vol = m.to_volume()[0]
    assert not vol[102:105, 102:105].any() and vol[101, 101]


def test_two_inclusion_rois_on_one_slice_are_ored():
    read, mark = one_mark(
        [roi_xml(-10.0, square(100, 100, 4)), roi_xml(-10.0, square(200, 200, 4))]
    )
    m = rasterise_annotation(mark, xml_grid(read))
    assert m.voxels == 18 and m.box.shape[0] == 1


def test_one_point_and_offgrid_outlines_do_not_break():
    read, mark = one_mark([roi_xml(-10.0, [(5, 5)]), roi_xml(-12.5, square(509, 509, 6))])
    m = rasterise_annotation(mark, xml_grid(read))
    assert m.voxels == 2 * 2  # only the on-grid part of the interior (rows/cols 510..511)


def test_voxels_per_z_and_xml_grid():
    read = parse_lidc_xml(two_reader_xml().encode())
    grid = xml_grid(read)
    assert grid.kind == "xml" and grid.shape == (4, 512, 512) and grid.spacing_mm is None
    masks = rasterise_read(read, grid)
    assert [m.voxels for m in masks] == [18, 9]
    assert masks[0].voxels_per_z() == {-12.5: 9, -10.0: 9}


def test_ct_grid_matches_by_uid_then_nearest_z_then_warns():
    ct = fake_ct()
    rois = [
        roi_xml(-10.0, square(100, 100, 4)),  # UID on the CT
        roi_xml(-12.4, square(100, 100, 4), sop="9.9.9"),  # unknown UID, z within half a slice
        roi_xml(-40.0, square(100, 100, 4), sop="9.9.8"),  # nowhere near a slice
    ]
    _, mark = one_mark(rois)
    m = rasterise_annotation(mark, grid_for_ct(ct), reader=0)
    assert m.voxels_per_z() == {-12.5: 9, -10.0: 9}
    assert m.to_volume().shape == ct.shape
    assert len(m.warnings) == 1 and "1 outline(s)" in m.warnings[0]


def test_annotate_refuses_a_ct_of_another_series():
    from napari_lungkd.errors import LidcXmlError

    with pytest.raises(LidcXmlError, match="annotates series"):
        annotate(two_reader_xml().encode(), ct=fake_ct(series="1.2.3.999"))


def three_readers(shift_c=1, extra=()):
    a = nodule_xml("A", [roi_xml(-10.0, square(100, 100, 4))])
    b = nodule_xml("B", [roi_xml(-10.0, square(100, 100, 4))])
    c = nodule_xml("C", [roi_xml(-10.0, square(100 + shift_c, 100 + shift_c, 4))])
    return lidc_xml([session_xml([a, *extra]), session_xml([b]), session_xml([c])])


def test_consensus_levels_hand_computed():
    read = parse_lidc_xml(three_readers().encode())
    masks = rasterise_read(read, xml_grid(read))
    assert [m.voxels for m in masks] == [9, 9, 9]
    # A == B (rows/cols 101..103), C one pixel down-right: 2x2 shared by all three
    assert consensus(masks, 0.5).voxels == 9  # >= 1.5 of 3 votes
    assert consensus(masks, 1.0).voxels == 4
    assert consensus(masks, 0.3).voxels == 9 + 9 - 4  # >= 0.9 votes: the union


def test_far_annotation_of_the_same_reader_is_its_own_nodule():
    far = nodule_xml("A2", [roi_xml(-10.0, square(300, 300, 4))])
    lidc = annotate(three_readers(extra=[far]).encode())
    assert [(n.readers, n.consensus_voxels) for n in lidc.nodules] == [((0, 1, 2), 9), ((0,), 9)]
    assert lidc.nodules[0].annotations == (0, 2, 3)  # indices into lidc.annotations


def test_a_reader_drawing_two_pieces_never_doubles_in_one_nodule():
    # reader 1 outlines a nodule as two touching halves, reader 2 as one whole (pylidc issue #18)
    left = nodule_xml("L", [roi_xml(-10.0, square(100, 100, 4))])
    right = nodule_xml("R", [roi_xml(-10.0, square(104, 100, 4))])
    whole = nodule_xml("W", [roi_xml(-10.0, [*square(100, 100, 8)])])
    read = parse_lidc_xml(lidc_xml([session_xml([left, right]), session_xml([whole])]).encode())
    masks = rasterise_read(read, xml_grid(read))
    groups = cluster_annotations(masks)
    for g in groups:
        readers = [masks[i].reader for i in g]
        assert len(readers) == len(set(readers))
    # both halves touch the whole (distance 0) and share 9 voxels with it: file order, L joins W
    assert sorted(groups) == [[0, 2], [1]]
    # when the right piece shares more voxels with the whole (15 vs 9), the tie goes to it
    right = nodule_xml("R", [roi_xml(-10.0, square(104, 100, 6))])
    read = parse_lidc_xml(lidc_xml([session_xml([left, right]), session_xml([whole])]).encode())
    masks = rasterise_read(read, xml_grid(read))
    assert shared_voxels(masks[1], masks[2]) == 15 and shared_voxels(masks[0], masks[2]) == 9
    assert sorted(cluster_annotations(masks)) == [[0], [1, 2]]


def test_luna16_rule_keeps_nodules_of_three_or_more_readers():
    far_a = nodule_xml("A2", [roi_xml(-10.0, square(300, 300, 4))])
    far_b = nodule_xml("B2", [roi_xml(-10.0, square(300, 300, 4))])
    a = nodule_xml("A", [roi_xml(-10.0, square(100, 100, 4))])
    b = nodule_xml("B", [roi_xml(-10.0, square(100, 100, 4))])
    c = nodule_xml("C", [roi_xml(-10.0, square(100, 100, 4))])
    text = lidc_xml([session_xml([a, far_a]), session_xml([b, far_b]), session_xml([c])])
    lidc = annotate(text.encode())
    assert sorted(n.n_readers for n in lidc.nodules) == [2, 3]
    assert int((lidc.consensus_labels("pylidc") > 0).sum()) == 18
    luna = lidc.consensus_labels("luna16")
    assert int((luna > 0).sum()) == 9 and luna[0, 102, 102] > 0 and luna[0, 302, 302] == 0


def test_nodule_facts_on_a_ct_grid():
    ct = fake_ct()
    lidc = annotate(three_readers().encode(), ct=ct, level=0.5)
    (nod,) = lidc.nodules
    assert nod.consensus_voxels == 9
    assert nod.volume_mm3 == pytest.approx(9 * 2.5 * 0.5 * 0.5)
    assert nod.diameter_mm == pytest.approx(4 * math.sqrt(2) * 0.5)  # corner to corner
    assert nod.centroid_zyx == pytest.approx((2.0, 102.0, 102.0))
    assert nod.centroid_lps_mm == pytest.approx((-64 + 51.0, -64 + 51.0, -10.0))
    assert nod.characteristics["malignancy"] == 5.0


def test_json_document_shape():
    d = annotate(two_reader_xml().encode()).to_dict()
    a0 = d["annotations"][0]
    assert (a0["reader"], a0["nodule_id"], a0["voxels"]) == (1, "N1", 18)
    assert a0["voxels_per_z"] == {"-12.5": 9, "-10": 9}
    (nod,) = d["nodules"]
    assert nod["annotations"] == [0, 1] and nod["n_readers"] == 2
    # N1 (101..103) and IL057 (102..104) share 2x2 on z=-10; level 0.5 of 2 = 1 vote: union
    assert nod["consensus_voxels"] == 18 + 9 - 4
    assert d["small_nodules"][0]["nodule_id"] == "small"
    assert d["grid"]["kind"] == "xml"
