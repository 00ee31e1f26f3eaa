"""The bundled second stage: each U-Net's own 3-D classifier is found, checked and described, was
trained without the patients it was measured on, and a changed copy is refused."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("torch")

from napari_lungkd.errors import WeightsError  # noqa: E402
from napari_lungkd.inference.fp_reduction import find_classifier, load_classifier  # noqa: E402


@pytest.mark.parametrize(
    ("model", "role", "arch"),
    [("student", "distilled", "student"), ("teacher", "teacher", "teacher")],
)
def test_each_pipeline_finds_its_own_checked_classifier(model, role, arch):
    clf = load_classifier(model)  # "auto": the bundled file
    meta = clf.metadata
    assert (meta["kind"], meta["role"], meta["arch"]) == ("cnn3d", role, arch)
    rates = [o["fp_per_scan"] for o in clf.operating_points]
    assert rates == [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    one = clf.operating_points[3]
    assert 0.0 < clf.default_threshold == one["threshold"] < 1.0
    # fold A: the chests no U-Net saw are held out; the operating points come from every trainable
    # real chest (and its inserted copies), each scored by the fold file that held it out
    held = set(meta["data_split"]["held_out_patients"])
    assert {"LIDC-IDRI-0001", "C3N-00247", "LUNG1-001", "IBSI_ct_phantom"} <= held
    assert not held & {t.split("+")[0] for t in meta["data_split"]["train_cases"]}
    assert len(meta["training"]["operating_points_scored_by"]) == 2
    sources = {n.split("+")[0] for n in meta["operating_points_from"]}
    assert "LIDC-IDRI-0001" in sources and "pyradiomics_lung2" in sources
    assert not sources & {"LUNG1-001", "IBSI_ct_phantom"}  # CC BY-NC: never set anything
    assert not any(n.startswith("phantom") for n in sources)
    assert load_classifier(model, "off") is None


def test_a_changed_copy_of_a_bundled_classifier_is_refused(tmp_path):
    copy = tmp_path / "student_fp.safetensors"
    shutil.copyfile(find_classifier("student"), copy)
    data = bytearray(copy.read_bytes())
    data[-100] ^= 0x01  # one bit of one weight
    copy.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="changed"):
        load_classifier("student", str(copy))
