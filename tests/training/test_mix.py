"""src_training.mix: the training set of phantoms and nodules inserted into real chests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from napari_lungkd.errors import TrainingError
from napari_lungkd.progress import run_to_end
from src_training import mix
from src_training.real_chests import CHESTS

REALDATA = Path(
    os.environ.get("LUNGKD_REALDATA", Path(__file__).parents[3] / "shared" / "realdata")
)


def test_vessel_points_lie_on_vessels_inside_the_lungs_and_clear_of_nodules():
    from napari_lungkd.phantom import make_phantom

    p = make_phantom(11, size=128, n_slices=40, n_nodules=3)
    labels = p.labels > 0
    pts = mix.vessel_points(p.hu, p.spacing_mm, labels, 50, seed=0)
    assert 10 <= len(pts) <= 50
    assert (p.hu[tuple(pts.T)] > mix.VESSEL_HU).all()
    from scipy import ndimage

    dist = ndimage.distance_transform_edt(~labels, sampling=p.spacing_mm)
    assert (dist[tuple(pts.T)] > mix.HARD_CLEARANCE_MM).all()
    again = mix.vessel_points(p.hu, p.spacing_mm, labels, 50, seed=0)
    assert np.array_equal(pts, again)


def test_split_keeps_each_patient_in_one_part_and_hosts_in_training():
    patients = {f"LKD-PHANTOM-{i:04d}": [f"phantom-{i}"] for i in range(10)}
    patients["elastix"] = ["elastix_baseline+ins7000", "elastix_followup+ins7000"]
    patients["Lung_Dx-A0001"] = ["Lung_Dx-A0001+ins7000"]
    split = mix.mix_split(
        patients, {"elastix", "Lung_Dx-A0001"}, {"Lung_Dx-A0001"}, {"LIDC-IDRI-0001"}, 0.2, 0
    )
    parts = split["patients"]
    assert "elastix" in parts["train"] and "Lung_Dx-A0001" in parts["val"]
    assert parts["test"] == ["LIDC-IDRI-0001"] and split["cases"]["test"] == []
    assert len([p for p in parts["val"] if p.startswith("LKD")]) == 2
    seen = [p for k in ("train", "val", "test") for p in parts[k]]
    assert len(seen) == len(set(seen)) == len(patients) + 1
    assert sorted(split["cases"]["train"] + split["cases"]["val"]) == sorted(
        c for cs in patients.values() for c in cs
    )


def test_phantom_cases_build_resume_and_refuse_held_out_or_unlicensed_hosts(tmp_path):
    split = run_to_end(mix.iter_mix(tmp_path, [1, 2], size=96, val_fraction=0.5))
    assert sorted(split["cases"]["train"] + split["cases"]["val"]) == [
        "phantom-00001v",
        "phantom-00002v",
    ]
    meta = json.loads((tmp_path / "phantom-00001v" / "case.json").read_text())
    assert meta["kind"] == "phantom (varied scanner)" and len(meta["hard_negatives"]) > 0
    stamp = (tmp_path / "phantom-00001v" / "hu.npy").stat().st_mtime_ns
    run_to_end(mix.iter_mix(tmp_path, [1, 2], size=96))
    assert (tmp_path / "phantom-00001v" / "hu.npy").stat().st_mtime_ns == stamp  # kept
    with pytest.raises(TrainingError, match="held out"):
        run_to_end(mix.iter_mix(tmp_path, [], hosts=["LIDC-IDRI-0001"]))
    with pytest.raises(TrainingError, match="CC BY-NC"):
        run_to_end(mix.iter_mix(tmp_path, [], hosts=["LUNG1-001"], held_out=()))
    with pytest.raises(TrainingError, match="Unknown real host"):
        run_to_end(mix.iter_mix(tmp_path, [], hosts=["nope"]))


@pytest.mark.realdata
@pytest.mark.slow
def test_inserted_case_of_a_real_host_ignores_its_own_lesions(tmp_path, monkeypatch):
    """Lung_Dx-A0001 has its tumour boxed: the boxes become the ignore region of every inserted
    case; nodules and hard negatives stay clear of it; the host trains, 0001 is held out."""
    chest = next(c for c in CHESTS if c.name == "Lung_Dx-A0001")
    if not chest.path(REALDATA).exists():
        pytest.skip(f"{chest.path(REALDATA)} is not here (LUNGKD_REALDATA)")
    monkeypatch.setenv("LUNGKD_REALDATA", str(REALDATA))
    split = run_to_end(mix.iter_mix(tmp_path, [], hosts=["Lung_Dx-A0001"], n_inserted=1))
    assert split["cases"]["train"] == ["Lung_Dx-A0001+ins7000"]
    assert "LIDC-IDRI-0001" in split["patients"]["test"]
    folder = tmp_path / "Lung_Dx-A0001+ins7000"
    meta = json.loads((folder / "case.json").read_text())
    ignore = np.load(folder / "ignore.npy") > 0
    labels = np.load(folder / "labels.npy")
    assert meta["ignored_voxels"] == ignore.sum() > 0 and meta["n_nodules"] >= 1
    assert not (ignore & (labels > 0)).any()
    pts = np.asarray(meta["hard_negatives"])
    assert len(pts) > 20 and not ignore[tuple(pts.T)].any()
    from scipy import ndimage

    far = ndimage.distance_transform_edt(labels == 0, sampling=meta["spacing_mm"])
    assert (far[tuple(pts.T)] > mix.HARD_CLEARANCE_MM).all()


def test_test_only_moves_every_patient_and_case_to_the_test_part(tmp_path):
    import json

    from src_training.prepare import test_only

    split = {
        "seed": 0,
        "patients": {"train": ["A", "B"], "val": ["C"], "test": ["D"]},
        "cases": {"train": ["a1", "b1"], "val": ["c1"], "test": []},
    }
    path = tmp_path / "split.json"
    path.write_text(json.dumps(split))
    out = test_only(path)
    assert out["patients"] == {"train": [], "val": [], "test": ["A", "B", "C", "D"]}
    assert out["cases"]["test"] == ["a1", "b1", "c1"] and out["cases"]["train"] == []
    assert json.loads(path.read_text()) == out and out["seed"] == 0
