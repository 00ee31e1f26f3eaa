"""A written phantom case is a real LIDC-style case: DICOM opens with load_ct, XML parses with the
LIDC parser, and every reader's outline recovers the generator's truth within the reader's jitter."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from napari_lungkd.phantom import make_phantom, write_case
from napari_lungkd.phantom.scanner import fov_mask

NS = "{http://www.nih.gov}"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    phantom = make_phantom(
        21, size=256, n_slices=64, kinds=("solid", "part-solid", "ground-glass", "solid")
    )
    paths = write_case(phantom, tmp_path_factory.mktemp("cases"), n_readers=4)
    return phantom, paths


def test_case_files_are_where_the_dict_says(case):
    phantom, paths = case
    dcm = sorted(paths["series_dir"].glob("*.dcm"))
    assert len(dcm) == phantom.shape[0]
    assert paths["xml"].is_file() and paths["truth_mask"].is_file()
    facts = json.loads(paths["nodules_json"].read_text())
    assert facts["patient_id"] == phantom.patient_id == "LKD-PHANTOM-0021"
    assert [n["label"] for n in facts["nodules"]] == [n.label for n in phantom.nodules]


def test_dicom_series_loads_back_to_the_phantom(case):
    import pydicom

    from napari_lungkd import load_ct

    phantom, paths = case
    ct = load_ct(paths["series_dir"])
    assert ct.hu.shape == phantom.shape
    inside = fov_mask(phantom.shape[1])
    assert np.array_equal(ct.hu[:, inside], phantom.hu[:, inside])
    assert np.allclose(ct.spacing_mm, phantom.spacing_mm) and np.allclose(
        ct.origin_mm, phantom.origin_mm
    )
    assert ct.series_uid == paths["series_uid"] and ct.patient_id == phantom.patient_id
    # file names are in no z order, as in TCIA's downloads
    ds = [
        pydicom.dcmread(p, stop_before_pixels=True)
        for p in sorted(paths["series_dir"].glob("*.dcm"))[:6]
    ]
    z = [float(d.ImagePositionPatient[2]) for d in ds]
    assert z != sorted(z) and z != sorted(z, reverse=True)
    assert all(
        d.Modality == "CT" and d.RescaleIntercept == -1024 and "PixelPaddingValue" in d for d in ds
    )


def test_xml_follows_tcia_schema(case):
    phantom, paths = case
    root = ET.parse(paths["xml"]).getroot()
    assert root.tag == f"{NS}LidcReadMessage"
    assert root.find(f"{NS}ResponseHeader/{NS}SeriesInstanceUid").text == paths["series_uid"]
    sessions = root.findall(f"{NS}readingSession")
    assert len(sessions) == 4
    for s in sessions:
        assert s.find(f"{NS}servicingRadiologistID").text.isdigit()
        for nod in s.findall(f"{NS}unblindedReadNodule"):
            rois = nod.findall(f"{NS}roi")
            points = [len(r.findall(f"{NS}edgeMap")) for r in rois]
            if nod.find(f"{NS}characteristics") is None:  # a small-nodule mark: one point
                assert points == [1]
            else:
                assert all(p >= 3 for p in points)
                assert len(nod.find(f"{NS}characteristics")) == 9


def test_reader_outlines_recover_the_truth(case):
    """Each reader's outline, rasterised by the LIDC parser, differs from the truth only within
    that reader's bias and jitter (plus one voxel), and overlaps it well."""
    from scipy import ndimage

    from napari_lungkd import load_ct
    from napari_lungkd.lidc import annotate
    from napari_lungkd.scoring.metrics import dice

    phantom, paths = case
    lidc = annotate(paths["xml"], ct=load_ct(paths["series_dir"]))
    assert not [w for w in lidc.warnings if "SOP" in w or "slice" in w]
    readers = json.loads(paths["nodules_json"].read_text())["readers"]
    big = {n.label for n in phantom.nodules if n.diameter_mm >= 5.0 and n.n_voxels >= 30}
    assert big, "the fixture case should hold nodules of 5 mm or more"
    scores, seen = [], set()
    for ann in lidc.annotations:
        vol = ann.to_volume() > 0
        if vol.sum() < 2:
            continue
        label, d = max(
            ((n.label, dice(vol, phantom.labels == n.label)) for n in phantom.nodules),
            key=lambda t: t[1],
        )
        if label not in big:
            continue
        seen.add(label)
        scores.append(d)
        truth = phantom.labels == label
        box = ndimage.find_objects((truth | vol).astype(np.uint8))[0]
        box = tuple(slice(max(b.start - 3, 0), b.stop + 3) for b in box)
        t, v = truth[box], vol[box]
        signed = ndimage.distance_transform_edt(
            ~t, sampling=phantom.spacing_mm
        ) + ndimage.distance_transform_edt(t, sampling=phantom.spacing_mm)
        r = readers[ann.reader]
        tol_mm = abs(r["bias_mm"]) + 3.0 * r["jitter_mm"] + max(phantom.spacing_mm)
        assert signed[v ^ t].max(initial=0.0) <= tol_mm
    assert len(seen) >= len(big) - 1  # a reader may miss a subtle one, not all readers all
    assert np.median(scores) > 0.8 and min(scores) > 0.5, scores
    # readers differ from each other (jitter and bias): they are not identical copies of the truth
    assert len({round(d, 4) for d in scores}) > 1 and min(scores) < 1.0
