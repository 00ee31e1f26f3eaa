"""src_training: split and leakage guard, slice datasets (on a small synthetic cache)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training_cache import write_cache  # noqa: E402

from napari_lungkd.errors import TrainingError  # noqa: E402
from napari_lungkd.models.specs import get_spec  # noqa: E402
from src_training import data as D  # noqa: E402
from src_training.prepare import check_no_leakage, make_split, read_split  # noqa: E402


@pytest.fixture
def cache(tmp_path):
    return write_cache(tmp_path / "cache")


def test_split_is_by_patient_seeded_and_covers_everyone():
    by_patient = {f"P{i}": [f"P{i}_a", f"P{i}_b"] for i in range(10)}
    a, b = make_split(by_patient, seed=3), make_split(by_patient, seed=3)
    assert a == b
    assert make_split(by_patient, seed=4)["patients"] != a["patients"]
    parts = [set(a["patients"][k]) for k in ("train", "val", "test")]
    assert (
        all(parts)
        and not (parts[0] & parts[1])
        and not (parts[0] & parts[2])
        and not (parts[1] & parts[2])
    )
    assert set().union(*parts) == set(by_patient)
    # both series of a patient land in the same part
    for k in ("train", "val", "test"):
        assert sorted(a["cases"][k]) == sorted(c for p in a["patients"][k] for c in by_patient[p])


def test_leakage_guard_refuses_training_patient(cache):
    split = read_split(cache / "split.json")
    train_patient = split["patients"]["train"][0]
    check_no_leakage({"x": split["patients"]["test"][0]}, split["patients"]["train"])
    with pytest.raises(TrainingError, match=train_patient):
        check_no_leakage({"case1": train_patient}, split["patients"]["train"])
    with pytest.raises(TrainingError, match="does not exist"):
        read_split(cache / "nope.json")


def test_epoch_plan_oversamples_nodule_slices_and_is_seeded(cache):
    cases = D.open_cases(cache, ["P0_s", "P1_s"])
    plan = D.epoch_plan(cases, 200, 0.5, seed=1, epoch=0)
    assert plan.shape == (200, 4)
    assert plan[:, 2].sum() == 100  # half positive although ~3/10 of slices hold the nodule
    for ci, z, pos, _ in plan:
        assert (z in cases[ci].positive) == bool(pos)
    assert np.array_equal(plan, D.epoch_plan(cases, 200, 0.5, seed=1, epoch=0))
    assert not np.array_equal(plan, D.epoch_plan(cases, 200, 0.5, seed=1, epoch=1))


def test_train_slices_crops_are_deterministic_and_hold_the_nodule(cache):
    cases = D.open_cases(cache, ["P0_s", "P1_s", "P2_s"])
    spec = get_spec("student")
    ds = D.TrainSlices(
        cases,
        spec,
        crop_size=32,
        samples_per_epoch=16,
        pos_fraction=1.0,
        augment_cfg={"flip_p": 0.5, "rotate_deg": 10, "scale": 0.1, "intensity": 0.05},
        seed=0,
    )
    x, y, w = ds[3]
    assert x.shape == (1, 32, 32) and y.shape == (1, 32, 32) and x.dtype == torch.float32
    assert torch.equal(w, torch.ones_like(w))  # no ignore region in this cache: every pixel counts
    assert set(np.unique(y.numpy())) <= {0.0, 1.0}
    assert all(ds[i][1].sum() > 0 for i in range(8))  # positive samples keep the nodule in the crop
    x2, y2, _ = ds[3]
    assert torch.equal(x, x2) and torch.equal(y, y2)
    ds.set_epoch(1)
    assert not torch.equal(ds[3][0], x)
    # window01 normalisation: lung at -850 HU -> about 0.107, nodule at 40 HU -> about 0.74 (before jitter)
    plain = D.TrainSlices(cases, spec, 32, 4, 1.0, None, seed=0)
    xp, yp, _ = plain[0]
    assert float(xp[0][yp[0] > 0].mean()) == pytest.approx((40 + 1000) / 1400, abs=0.02)


def test_two_and_a_half_d_uses_neighbour_slices(cache):
    cases = D.open_cases(cache, ["P0_s"])
    spec = get_spec("student").with_(context_slices=3)
    ds = D.TrainSlices(
        cases, spec, crop_size=48, samples_per_epoch=4, pos_fraction=0.0, augment_cfg=None
    )
    x, _, _ = ds[0]
    assert x.shape == (3, 48, 48)
    z = int(ds.plan[0][1])
    hu = np.asarray(cases[0].hu, dtype=np.float32)
    expect = np.clip(hu[max(z - 1, 0)], -1000, 400)
    assert np.allclose(x[0].numpy(), (expect + 1000) / 1400, atol=1e-5)


def test_resumable_sampler_partitions_and_skips():
    s0, s1 = D.ResumableDistributedSampler(10, 0, 2), D.ResumableDistributedSampler(10, 1, 2)
    assert list(s0) == [0, 2, 4, 6, 8] and list(s1) == [1, 3, 5, 7, 9]
    odd = [list(D.ResumableDistributedSampler(7, r, 2)) for r in (0, 1)]
    assert len(odd[0]) == len(odd[1]) == 4  # padded like DistributedSampler
    assert list(D.ResumableDistributedSampler(10, 1, 2, start=3)) == [7, 9]


def test_val_batches_are_padded_to_the_size_multiple(cache):
    cases = D.open_cases(cache, ["P0_s"])
    batches = list(D.iter_val_batches(cases, get_spec("student"), batch_size=4, max_negative=2))
    x, y = batches[0]
    assert x.shape[-2:] == (64, 64) and y.shape[1] == 1
    n = sum(len(b[0]) for b in batches)
    assert n == len(cases[0].positive) + 2
    case_json = json.loads((cache / "P0_s" / "case.json").read_text())
    assert case_json["patient_id"] == "P0"


def _add_ignore_and_hard(cache, case_id, hard):
    """Give a cached case an ignore region (a block) and hard-negative centres."""
    folder = cache / case_id
    mask = np.load(folder / "mask.npy")
    ignore = np.zeros_like(mask)
    ignore[:, :8, :8] = 1
    np.save(folder / "ignore.npy", ignore)
    meta = json.loads((folder / "case.json").read_text())
    meta["hard_negatives"] = hard
    (folder / "case.json").write_text(json.dumps(meta))
    return ignore


def test_hard_negative_crops_are_centred_on_their_points(cache):
    cases = D.open_cases(cache, ["P0_s", "P1_s"])
    z0 = int(cases[0].negative[0])
    hard = [[z0, 40, 30], [z0, 20, 10]]
    _add_ignore_and_hard(cache, "P0_s", hard)
    cases = D.open_cases(cache, ["P0_s", "P1_s"])
    assert cases[0].hard.tolist() == hard and len(cases[1].hard) == 0
    plan = D.epoch_plan(cases, 100, 0.3, seed=2, epoch=0, hard_fraction=0.4)
    kinds = plan[:, 2]
    assert (kinds == D.POSITIVE).sum() == 30 and (kinds == D.HARD).sum() == 40
    assert (kinds == D.RANDOM).sum() == 30
    for ci, z, _, k in plan[kinds == D.HARD]:
        assert ci == 0 and z == hard[k][0]
    # without hard negatives the plan is the one earlier versions drew (same rows and order)
    old = D.epoch_plan(cases, 100, 0.3, seed=2, epoch=0)
    assert (old[:, 3] == -1).all() and set(old[:, 2]) == {D.POSITIVE, D.RANDOM}
    ds = D.TrainSlices(cases, get_spec("student"), 16, 50, 0.0, None, seed=0, hard_fraction=1.0)
    assert (ds.plan[:, 2] == D.HARD).all()
    for i in range(6):
        _, z, _, k = ds.plan[i]
        x, _, _ = ds[i]
        hu = np.asarray(cases[0].hu, dtype=np.float32)[z]
        py, px = hard[k][1:]
        # the point lies within the crop: jitter is at most crop // 4 around the centre
        found = np.isclose(x[0].numpy(), (np.clip(hu[py, px], -1000, 400) + 1000) / 1400)
        assert found.any()


def test_ignore_region_gets_zero_loss_weight_and_follows_the_augmentation(cache):
    ignore = _add_ignore_and_hard(cache, "P0_s", [])
    cases = D.open_cases(cache, ["P0_s"])
    assert cases[0].ignore is not None and cases[0].ignore.sum() == ignore.sum()
    crop = int(cases[0].hu.shape[1])  # the whole slice: the block is at the crop's corner
    plain = D.TrainSlices(cases, get_spec("student"), crop, 4, 0.0, None, seed=0)
    _, _, w = plain[0]
    assert float(w[0, :8, :8].max()) == 0.0 and float(w[0, 8:, 8:].min()) == 1.0
    flip = {"flip_p": 1.0, "rotate_deg": 0.0, "scale": 0.0, "intensity": 0.0}
    flipped = D.TrainSlices(cases, get_spec("student"), crop, 4, 0.0, flip, seed=0)
    _, _, wf = flipped[0]
    assert float(wf[0, :8, -8:].max()) == 0.0 and float(wf[0, :8, :8].min()) == 1.0
