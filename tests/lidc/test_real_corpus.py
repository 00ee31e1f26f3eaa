"""LIDC XML on real files: TCIA's whole XML corpus, the selected trap cases, the real CT of 0001."""

from __future__ import annotations

import shutil
import statistics
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from napari_lungkd.errors import LidcXmlError
from napari_lungkd.lidc import annotate, find_lidc_xml, parse_lidc_xml, read_lidc_xml

pytestmark = pytest.mark.realdata

CASE_0001 = "LIDC-IDRI-0001__185_069.xml"
ORIGINAL_0101 = "LIDC-IDRI-0101__157_161_original.xml"
CORRECTED_0101 = "LIDC-IDRI-0101__161-resubmitted-correction-3-9-12.xml"


@pytest.fixture(scope="module")
def selected(realdata) -> Path:
    path = realdata / "lidc_xml" / "selected"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.mark.slow
def test_every_xml_in_the_tcia_corpus_parses_or_is_refused_as_radiograph(realdata):
    tar_path = realdata / "lidc_xml" / "tcia-lidc-xml-all.tar.xz"
    if not tar_path.is_file():
        pytest.skip(f"{tar_path} not found")
    parsed, refused, outlines = 0, 0, 0
    with tarfile.open(tar_path) as tf:
        for member in tf:
            if not member.isfile():
                continue
            try:
                read = parse_lidc_xml(tf.extractfile(member), name=member.name)
            except LidcXmlError as exc:  # anything else propagates and fails the test
                assert str(exc).startswith(f"{member.name}: this is a chest-radiograph read")
                refused += 1
                continue
            parsed += 1
            assert read.series_uid and 1 <= read.n_readers <= 8
            outlines += sum(len(s.large_nodules) for s in read.sessions)
    assert (parsed, refused) == (1035, 283)
    assert outlines > 6000  # the corpus holds about 7,000 large-nodule outlines


def test_selected_cases_parse_and_the_radiograph_is_refused(selected):
    for path in sorted(selected.glob("*.xml")):
        if path.name.startswith("CXR_"):
            with pytest.raises(LidcXmlError, match="chest-radiograph read"):
                read_lidc_xml(path)
            continue
        read = read_lidc_xml(path)
        assert read.series_uid, path.name
    assert read_lidc_xml(selected / "LIDC-IDRI-0566__188_011.xml").n_readers == 8
    empty = read_lidc_xml(selected / "LIDC-IDRI-0025__185_115.xml")
    assert any(not s.nodules and not s.non_nodules for s in empty.sessions)
    assert annotate(selected / "LIDC-IDRI-0668__189_142.xml").nodules == ()


def test_0002_whitespace_variants_give_identical_results(realdata, selected):
    variant = (
        realdata / "lidc_xml" / "variants" / "LIDC-IDRI-0002__071_reformatted_concept-to-clinic.xml"
    )
    if not variant.is_file():
        pytest.skip(f"{variant} not found")
    a = annotate(selected / "LIDC-IDRI-0002__185_071.xml").to_dict()
    b = annotate(variant).to_dict()
    a.pop("xml"), b.pop("xml")
    assert a == b
    assert any(
        not r.inclusion for s in read_lidc_xml(variant).sessions for n in s.nodules for r in n.rois
    )


def test_0101_both_files_read_and_a_folder_prefers_the_correction(selected, tmp_path):
    original = annotate(selected / ORIGINAL_0101)
    corrected = annotate(selected / CORRECTED_0101)
    assert original.read.series_uid == corrected.read.series_uid
    # the correction removes reader 1's bogus nodule "2" (142,290 voxels on 23 slices)
    assert [a.voxels for a in original.annotations] == [142290, 65, 115]
    assert [a.voxels for a in corrected.annotations] == [65, 115]
    # a DICOM folder holding both files (as TCIA names them) picks the corrected one
    shutil.copy(selected / ORIGINAL_0101, tmp_path / "161.xml")
    shutil.copy(selected / CORRECTED_0101, tmp_path / "161-resubmitted-correction-3-9-12.xml")
    (tmp_path / "000001.dcm").write_bytes(b"")
    found = find_lidc_xml(tmp_path, original.read.series_uid)
    assert found.name == "161-resubmitted-correction-3-9-12.xml"
    assert find_lidc_xml(tmp_path, "1.2.3.not.this.series") is None


def test_xml_is_found_beside_the_dicom_series(lidc0001):
    assert find_lidc_xml(lidc0001).name == "069.xml"


def test_parse_and_rasterise_0001_in_under_half_a_second(selected):
    annotate(selected / CASE_0001)  # warm the imports (skimage, scipy)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        annotate(selected / CASE_0001)
        times.append(time.perf_counter() - t0)
    assert statistics.median(times) < 0.5, times


@pytest.fixture(scope="module")
def ct0001(lidc0001):
    from napari_lungkd.io import load_ct

    return load_ct(lidc0001)


def test_consensus_on_the_real_ct_sits_on_soft_tissue(lidc0001, ct0001):
    lidc = annotate(lidc0001 / "069.xml", ct=ct0001)
    assert lidc.grid.kind == "ct" and lidc.warnings == ()  # every ROI found its slice by UID
    xml_only = annotate(lidc0001 / "069.xml")
    assert [a.voxels for a in lidc.annotations] == [a.voxels for a in xml_only.annotations]
    (nodule,) = lidc.nodules
    assert nodule.n_readers == 4 and nodule.consensus_voxels == 5428
    cons = lidc.consensus_mask() > 0
    hu = ct0001.hu[cons].astype(float)
    assert hu.mean() > -300, hu.mean()  # soft tissue, not lung (about -800)
    ring = np.zeros_like(cons)
    z, y, x = np.nonzero(cons)
    ring[z.min() : z.max() + 1, y.min() - 15 : y.max() + 16, x.min() - 15 : x.max() + 16] = True
    ring &= ~cons
    assert ct0001.hu[ring].mean() < hu.mean() - 200  # the surroundings are darker (lung)
    assert 15 < nodule.diameter_mm < 35 and nodule.volume_mm3 > 1000
    # image column ~316 of 512: the patient's left lung (LPS x > 0), z about -116 mm
    x, y, z = nodule.centroid_lps_mm
    assert 40 < x < 70 and -125 < z < -105
