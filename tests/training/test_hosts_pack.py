"""src_training.hosts_pack: real hosts in one carried file, read back by the mix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from napari_lungkd.errors import TrainingError
from napari_lungkd.progress import run_to_end
from src_training import hosts_pack as H
from src_training import mix

REALDATA = Path(
    os.environ.get("LUNGKD_REALDATA", Path(__file__).parents[3] / "shared" / "realdata")
)


def _phantom_host():
    """A small phantom as a 'host', with a made-up lesion to ignore inside its lungs."""
    from napari_lungkd.phantom import make_phantom

    p = make_phantom(5, size=96, n_slices=40, n_nodules=0, varied=True)
    ct = p.to_ct()
    marked = np.zeros(ct.hu.shape, bool)
    marked[18:22, 40:46, 30:36] = True
    return ct, marked


def test_diff_codec_round_trips_every_int16_exactly():
    rng = np.random.default_rng(0)
    hu = rng.integers(-32768, 32768, size=(3, 5, 7), dtype=np.int64).astype(np.int16)
    hu[0, 0, :2] = (32767, -32768)  # the largest jump wraps and must come back
    assert np.array_equal(H._decode(H._encode(hu)), hu)
    assert H._decode(H._encode(hu)).dtype == np.int16


def test_pack_crops_to_the_lungs_and_keeps_geometry_and_ignore(tmp_path):
    ct, marked = _phantom_host()
    meta, arrays = H.pack_ct("elastix_baseline", "elastix", ct, marked, "phantom 5")
    size = H.write_pack(tmp_path / "p.npz", [meta], arrays)
    assert size == (tmp_path / "p.npz").stat().st_size
    (host,) = H.load_pack(tmp_path / "p.npz")
    z0, y0, x0 = host.crop_zyx
    nz, ny, nx = host.ct.hu.shape
    assert np.array_equal(host.ct.hu, ct.hu[z0 : z0 + nz, y0 : y0 + ny, x0 : x0 + nx])
    assert np.array_equal(host.ignore, marked[z0 : z0 + nz, y0 : y0 + ny, x0 : x0 + nx])
    assert host.ignore.sum() == marked.sum()  # the lesion lies inside the lungs' box
    assert ny * nx < ct.hu.shape[1] * ct.hu.shape[2]  # the air around the body is gone
    # the same voxel is at the same place in the patient
    assert np.allclose(host.ct.index_to_lps([1, 2, 3]), ct.index_to_lps([z0 + 1, y0 + 2, x0 + 3]))
    assert host.ct.patient_id == "elastix" and host.ct.spacing_mm == ct.spacing_mm


def test_over_the_limit_unlicensed_unknown_or_broken_are_refused(tmp_path):
    ct, marked = _phantom_host()
    meta, arrays = H.pack_ct("elastix_baseline", "elastix", ct, marked)
    with pytest.raises(TrainingError, match=r"MiB, over the 0 MiB") as err:
        H.write_pack(tmp_path / "big.npz", [meta], arrays, limit_bytes=1000)
    assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())  # nothing left behind, not even a temporary file
    with pytest.raises(TrainingError, match="CC BY-NC"):
        run_to_end(H.iter_pack(tmp_path / "x.npz", ["LUNG1-001"]))
    with pytest.raises(TrainingError, match="Unknown real host"):
        run_to_end(H.iter_pack(tmp_path / "x.npz", ["nope"]))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(TrainingError, match="cannot be read"):
        H.load_pack(tmp_path / "bad.npz")
    with pytest.raises(TrainingError, match="does not exist"):
        H.load_pack(tmp_path / "missing.npz")


def test_mix_builds_inserted_cases_from_a_pack(tmp_path):
    """`mix --hosts-pack`: the host comes from the pack (not $LUNGKD_REALDATA); its marked lesion
    is the ignore region, the inserted nodules stay clear of it."""
    ct, marked = _phantom_host()
    meta, arrays = H.pack_ct("elastix_baseline", "elastix", ct, marked)
    H.write_pack(tmp_path / "p.npz", [meta], arrays)
    split = run_to_end(
        mix.iter_mix(tmp_path / "mix", [], n_inserted=1, hosts_pack=tmp_path / "p.npz")
    )
    assert split["cases"]["train"] == ["elastix_baseline+ins7000"]
    assert split["recipe"]["hosts"] == ["elastix_baseline"]
    folder = tmp_path / "mix" / "elastix_baseline+ins7000"
    case = json.loads((folder / "case.json").read_text())
    ignore, labels = np.load(folder / "ignore.npy") > 0, np.load(folder / "labels.npy")
    (host,) = H.load_pack(tmp_path / "p.npz")
    assert case["n_nodules"] >= 1 and ignore.shape == host.ct.hu.shape
    assert ignore[host.ignore].all()  # the marked lesion (grown a little) is ignored
    assert not (ignore & (labels > 0)).any()
    with pytest.raises(TrainingError, match="has no Lung_Dx-A0001"):
        run_to_end(
            mix.iter_mix(
                tmp_path / "m2", [], hosts=["Lung_Dx-A0001"], hosts_pack=tmp_path / "p.npz"
            )
        )


@pytest.mark.realdata
@pytest.mark.slow
def test_the_real_elastix_host_packs_small_and_reads_back(tmp_path, monkeypatch):
    from napari_lungkd.io import load_ct
    from src_training.real_chests import CHESTS

    chest = next(c for c in CHESTS if c.name == "elastix_baseline")
    if not chest.path(REALDATA).exists():
        pytest.skip(f"{chest.path(REALDATA)} is not here (LUNGKD_REALDATA)")
    size = run_to_end(H.iter_pack(tmp_path / "p.npz", ["elastix_baseline"], REALDATA))
    assert size < 8 * 2**20
    (host,) = H.load_pack(tmp_path / "p.npz")
    full = load_ct(chest.path(REALDATA))
    z0, y0, x0 = host.crop_zyx
    nz, ny, nx = host.ct.hu.shape
    assert np.array_equal(host.ct.hu, np.asarray(full.hu)[z0 : z0 + nz, y0 : y0 + ny, x0 : x0 + nx])
    assert nz >= 0.8 * full.hu.shape[0]  # a crop of the lung already: little is cut
