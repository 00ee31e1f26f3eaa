"""Masks written in the CT's geometry: re-read by SimpleITK they overlay the CT voxel for voxel."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from napari_lungkd.ct import CtVolume
from napari_lungkd.errors import ExportError
from napari_lungkd.io import load_ct
from napari_lungkd.io.masks import ct_image, read_mask, write_mask


def _ct(shape=(4, 5, 6)) -> CtVolume:
    return CtVolume(
        hu=np.zeros(shape, np.int16),
        spacing_mm=(2.5, 0.703125, 0.8),
        origin_mm=(-166.0, -171.699997, -340.0),
    )


def _mask(shape, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 3, size=shape).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd"])
def test_written_mask_has_ct_geometry_and_overlays_voxel_for_voxel(tmp_path, suffix):
    ct = _ct()
    mask = _mask(ct.shape)
    path = write_mask(tmp_path / f"mask{suffix}", mask, ct)
    image = sitk.ReadImage(str(path))
    assert image.GetPixelID() == sitk.sitkUInt8
    assert image.GetSpacing() == pytest.approx(ct.spacing_mm[::-1])
    assert image.GetOrigin() == pytest.approx(ct.origin_mm, abs=1e-4)
    assert image.GetDirection() == pytest.approx(tuple(np.eye(3).ravel()))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), mask)
    # a voxel's physical point is the same in the mask file and in the CT
    zyx = np.array([3, 1, 4])
    point = image.TransformIndexToPhysicalPoint([int(v) for v in zyx[::-1]])
    assert point == pytest.approx(tuple(ct.index_to_lps(zyx)), abs=1e-4)
    np.testing.assert_array_equal(read_mask(path, ct), mask)


def test_existing_file_is_refused_unless_overwrite(tmp_path):
    ct = _ct()
    path = write_mask(tmp_path / "m.nii.gz", _mask(ct.shape, 1), ct)
    before = path.read_bytes()
    with pytest.raises(ExportError, match="already exists"):
        write_mask(path, _mask(ct.shape, 2), ct)
    assert path.read_bytes() == before
    write_mask(path, _mask(ct.shape, 2), ct, overwrite=True)
    np.testing.assert_array_equal(read_mask(path, ct), _mask(ct.shape, 2))
    assert [p.name for p in tmp_path.iterdir()] == ["m.nii.gz"]  # no temporary files left


def test_bad_masks_are_refused(tmp_path):
    ct = _ct()
    with pytest.raises(ExportError, match="shape"):
        write_mask(tmp_path / "a.nii.gz", np.zeros((1, 2, 3), np.uint8), ct)
    with pytest.raises(ExportError, match="0-255"):
        write_mask(tmp_path / "a.nii.gz", np.full(ct.shape, 300), ct)
    with pytest.raises(ExportError, match="unsupported extension"):
        write_mask(tmp_path / "a.png", np.zeros(ct.shape, np.uint8), ct)
    path = write_mask(tmp_path / "b.nii.gz", np.ones(ct.shape, bool), ct)
    assert read_mask(path, ct).dtype == np.uint8
    assert not (tmp_path / "a.nii.gz").exists()


def test_read_mask_refuses_another_grid_and_undoes_axis_flips(tmp_path):
    ct = _ct()
    mask = _mask(ct.shape)
    other = CtVolume(hu=ct.hu, spacing_mm=(2.0, 0.703125, 0.8), origin_mm=ct.origin_mm)
    path = write_mask(tmp_path / "other.nrrd", mask, other)
    with pytest.raises(ExportError, match=r"other\.nrrd is not on this CT's grid \(spacing"):
        read_mask(path, ct)
    # the same mask stored by a RAS-minded tool: x and y flipped, origin at the other corner
    image = ct_image(mask[:, ::-1, ::-1], ct)
    image.SetDirection([-1, 0, 0, 0, -1, 0, 0, 0, 1])
    far = ct.index_to_lps(np.array([0, ct.shape[1] - 1, ct.shape[2] - 1]))
    image.SetOrigin([float(v) for v in far])
    sitk.WriteImage(image, str(tmp_path / "ras.nii.gz"))
    np.testing.assert_array_equal(read_mask(tmp_path / "ras.nii.gz", ct), mask)
    with pytest.raises(ExportError, match="does not exist"):
        read_mask(tmp_path / "missing.nii.gz", ct)


@pytest.mark.realdata
def test_mask_on_lidc0001_overlays_the_series(tmp_path, lidc0001):
    ct = load_ct(lidc0001)
    mask = np.zeros(ct.shape, np.uint8)
    mask[60:70, 300:320, 100:130] = 1
    path = write_mask(tmp_path / "lidc0001_mask.nii.gz", mask, ct)
    image = sitk.ReadImage(str(path))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(lidc0001)))
    reference = reader.Execute()  # SimpleITK's own reading of the DICOM series
    assert image.GetSize() == reference.GetSize()
    assert image.GetSpacing() == pytest.approx(reference.GetSpacing(), abs=1e-5)
    assert image.GetOrigin() == pytest.approx(reference.GetOrigin(), abs=1e-3)
    assert image.GetDirection() == pytest.approx(reference.GetDirection(), abs=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(reference), ct.hu)
    np.testing.assert_array_equal(read_mask(path, ct), mask)


# ---- save_mask: the one save the CLI and the GUI share, with its provenance sidecar -------------
class _Provenance:
    """Stands in for inference's Provenance dataclass: an object with to_dict()."""

    def to_dict(self) -> dict:
        return {"model": "student", "weights_sha256": "ab" * 32, "threshold": 0.5, "device": "cpu"}


def test_save_mask_writes_mask_and_sidecar_and_takes_provenance_objects(tmp_path):
    import json

    from napari_lungkd.io.masks import save_mask
    from napari_lungkd.io.sidecar import SCHEMA

    ct = _ct()
    model = _mask(ct.shape, 1) > 0
    edited = model.copy()
    edited[0, 0, 0], edited[1, 1, 1] = True, False
    files = save_mask(
        tmp_path / "m.nii.gz", edited, ct, provenance=_Provenance(), model_mask=model, nrrd=True
    )
    assert set(files) == {"mask", "nrrd", "sidecar"}  # no DICOM-SEG: this CT is not DICOM
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.nii.gz", "m.nrrd"]
    doc = json.loads(files["sidecar"].read_text())
    assert doc["schema"] == SCHEMA and doc["mask"] == {"mask": "m.nii.gz", "nrrd": "m.nrrd"}
    assert doc["provenance"] == _Provenance().to_dict() and doc["model"] == "student"
    assert doc["edits"]["voxels_added"] == int(not model[0, 0, 0])
    assert doc["edits"]["voxels_removed"] == int(model[1, 1, 1])
    assert doc["voxels"] == int(edited.sum()) and doc["ct"]["shape_zyx"] == list(ct.shape)
    np.testing.assert_array_equal(read_mask(files["nrrd"], ct), edited.astype(np.uint8))
    # labels=True keeps label values; the default saves nodule / not nodule
    labels = _mask(ct.shape, 3)
    save_mask(tmp_path / "l.nii.gz", labels, ct, labels=True)
    np.testing.assert_array_equal(read_mask(tmp_path / "l.nii.gz", ct), labels)
    save_mask(tmp_path / "b.nii.gz", labels, ct)
    np.testing.assert_array_equal(read_mask(tmp_path / "b.nii.gz", ct), labels > 0)


def test_save_mask_never_overwrites_without_asking_and_leaves_nothing_half_done(
    tmp_path, monkeypatch
):
    from napari_lungkd.io import masks as masks_module
    from napari_lungkd.io.masks import save_mask

    ct = _ct()
    (tmp_path / "m.json").write_text("{}")  # only the sidecar exists: still nothing is written
    with pytest.raises(ExportError, match="m.json already exists"):
        save_mask(tmp_path / "m.nii.gz", _mask(ct.shape), ct)
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
    assert (tmp_path / "m.json").read_text() == "{}"
    save_mask(tmp_path / "m.nii.gz", _mask(ct.shape), ct, overwrite=True)
    assert (tmp_path / "m.json").read_text() != "{}"

    def fail(*args, **kwargs):
        raise ExportError("disk full")

    monkeypatch.setattr("napari_lungkd.files.write_json", fail)
    with pytest.raises(ExportError, match="disk full"):
        save_mask(tmp_path / "n.nii.gz", _mask(ct.shape), ct, nrrd=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.nii.gz"]
    assert masks_module.planned_paths(tmp_path / "n.nii.gz", ct)["sidecar"].name == "n.json"


def test_unreadable_sidecar_provenance_gives_a_warning_not_a_silent_empty_dict(tmp_path):
    from napari_lungkd.io.masks import save_mask
    from napari_lungkd.io.sidecar import read_provenance

    ct = _ct()
    files = save_mask(tmp_path / "m.nii.gz", _mask(ct.shape), ct, provenance=_Provenance())
    assert read_provenance(files["mask"]) == (_Provenance().to_dict(), None)
    assert read_provenance(tmp_path / "other.nii.gz") == ({}, None)  # no sidecar: nothing to say
    for text, words in (
        ("{not json", "cannot be read as JSON"),
        ("[1, 2]", "JSON list, not a sidecar object"),
        ('{"provenance": "student"}', "provenance that is a JSON str"),
        ('{"mask": {}}', "has no provenance"),
    ):
        files["sidecar"].write_text(text)
        provenance, warning = read_provenance(files["mask"])
        assert provenance == {} and words in warning and str(files["sidecar"]) in warning, text
