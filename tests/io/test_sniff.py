"""One table says what a CT input is: load_ct, the napari reader and the CLI's batch discovery agree.

Each fixture is put to the three faces: ``load_ct`` (loads it or raises), the napari reader hook
(accepts or declines) and ``lungkd segment``'s case discovery (lists cases or refuses).
"""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_factory import write_series

from napari_lungkd._napari.reader import get_ct_reader, read_ct
from napari_lungkd.cli.main import main
from napari_lungkd.cli.segment import find_cases
from napari_lungkd.errors import CtLoadError
from napari_lungkd.io import load_ct
from napari_lungkd.io import sniff as sniff_module
from napari_lungkd.io.sniff import sniff


def without_preamble(files, keep_meta: bool) -> None:
    """Rewrite DICOM files with no 128-byte preamble and DICM marker (as some scanners write)."""
    for path in files:
        ds = pydicom.dcmread(path)
        ds.preamble = None
        if not keep_meta:
            del ds.file_meta
        ds.save_as(path, enforce_file_format=False, little_endian=True, implicit_vr=False)


@pytest.mark.parametrize("keep_meta", [True, False], ids=["meta-first", "data-set-first"])
def test_preamble_less_dicom_folder_is_ct_for_all_three_faces(tmp_path, keep_meta):
    series = write_series(tmp_path / "scan", 4, names=[f"IM{k:04d}" for k in range(4)])
    without_preamble(series.files, keep_meta)
    head = series.files[0].read_bytes()[:132]
    assert head[128:132] != b"DICM" and head[:2] == (b"\x02\x00" if keep_meta else b"\x08\x00")

    info = sniff(tmp_path / "scan")
    assert info.kind == "dicom_folder" and info.is_ct
    np.testing.assert_array_equal(load_ct(tmp_path / "scan").hu, series.hu)
    assert get_ct_reader(str(tmp_path / "scan")) is read_ct  # declined before sniff
    assert find_cases(tmp_path / "scan") == [tmp_path / "scan"]
    assert sniff(series.files[0]).kind == "dicom_file"
    assert get_ct_reader(str(series.files[0])) is read_ct


def test_folder_of_two_ima_series_folders_is_two_cases(tmp_path):
    root = tmp_path / "study"
    a = write_series(root / "s1", 5, names=[f"A{k}.IMA" for k in range(5)])
    b = write_series(root / "s2", 3, names=[f"B{k}.IMA" for k in range(3)])
    without_preamble(a.files + b.files, keep_meta=False)  # Siemens .IMA often has none

    assert find_cases(root) == [root / "s1", root / "s2"]  # was one case for the whole folder
    for folder, series in ((root / "s1", a), (root / "s2", b)):
        assert sniff(folder).kind == "dicom_folder"
        np.testing.assert_array_equal(load_ct(folder).hu, series.hu)
        assert get_ct_reader(str(folder)) is read_ct
    assert sniff(root).kind == "dicom_folder"
    assert get_ct_reader(str(root)) is read_ct
    ct = load_ct(root)  # the whole folder: the series with the most slices, the other named
    assert ct.series_uid == a.series_uid and any(b.series_uid in w for w in ct.warnings)


def test_image_file_is_ct_everywhere_and_a_folder_of_them_is_one_case_each(tmp_path):
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4), np.int16)), str(path))
    assert sniff(path).kind == "image_file"
    assert load_ct(path).shape == (2, 3, 4)
    assert get_ct_reader(str(path)) is read_ct
    assert find_cases(path) == [path]
    # a folder of image files is not itself a CT, but it is a batch of them
    (tmp_path / "more").mkdir()
    other = tmp_path / "more" / "b.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4), np.int16)), str(other))
    assert find_cases(tmp_path) == [path, other]
    info = sniff(tmp_path / "more")
    assert info.kind == "not_ct" and "b.nrrd" in info.reason
    assert get_ct_reader(str(tmp_path / "more")) is None
    with pytest.raises(CtLoadError, match="holds no DICOM files"):
        load_ct(tmp_path / "more")


def test_text_file_is_refused_by_all_three_with_the_same_reason(tmp_path, caplog, capsys):
    path = tmp_path / "notes"
    path.write_text("just text, no suffix")
    reason = sniff(path).reason
    assert sniff(path).kind == "not_ct" and str(path) in reason and "not DICOM" in reason
    with pytest.raises(CtLoadError) as loaded:
        load_ct(path)
    assert str(loaded.value) == reason
    caplog.set_level(logging.DEBUG, logger="napari_lungkd._napari.reader")
    assert get_ct_reader(str(path)) is None
    assert reason in caplog.text
    with pytest.raises(CtLoadError) as discovered:
        find_cases(path)
    assert str(discovered.value) == reason
    assert main(["segment", str(path), "--weights", "random", "--out", str(tmp_path / "o")]) == 2
    assert reason in capsys.readouterr().err


@pytest.mark.parametrize("what", ["empty", "texts", "zarr", "missing"])
def test_folders_without_ct_are_refused_alike(tmp_path, what):
    folder = tmp_path / ("image.zarr" if what == "zarr" else what)
    if what != "missing":
        folder.mkdir()
    if what == "texts":
        (folder / "a.txt").write_text("hello")
        (folder / "b.xml").write_text("<a/>")
    if what == "zarr":
        (folder / "0.dcm").write_bytes(b"")
    info = sniff(folder)
    assert info.kind == "not_ct" and str(folder) in info.reason
    with pytest.raises(CtLoadError) as loaded:
        load_ct(folder)
    assert str(loaded.value) == info.reason
    assert get_ct_reader(str(folder)) is None
    with pytest.raises(CtLoadError) as discovered:
        find_cases(folder)
    assert str(discovered.value) == info.reason


def test_sniff_stops_at_the_first_dicom_file(tmp_path, monkeypatch):
    series = write_series(tmp_path / "s", 3, names=["A000", "A001", "A002"])
    for k in range(40):
        (tmp_path / "s" / f"Z{k:03d}").write_bytes(b"\x00" * 200)
    looked = []
    real = sniff_module._file_kind
    monkeypatch.setattr(sniff_module, "_file_kind", lambda p: looked.append(p) or real(p))
    assert sniff(tmp_path / "s").kind == "dicom_folder"
    assert looked == [series.files[0]]


def test_named_like_dicom_is_taken_and_the_loader_says_what_is_wrong(tmp_path):
    (tmp_path / "a.dcm").write_bytes(b"\x00" * 300)
    assert sniff(tmp_path).kind == "dicom_folder"
    assert get_ct_reader(str(tmp_path)) is read_ct
    with pytest.raises(CtLoadError, match="named like a DICOM file but is not one"):
        load_ct(tmp_path)
