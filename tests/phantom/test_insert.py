"""insert_nodules: seeded nodules pasted into a real (here: a small synthetic HU) chest CT."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy import ndimage
from synthetic_host import NOISE_HU, SPACING, synthetic_chest

from napari_lungkd.ct import CtVolume
from napari_lungkd.phantom import Inserted, insert_nodules
from napari_lungkd.phantom.insert import IGNORE_MARGIN_MM, InsertError


def _chest():
    return synthetic_chest()


@pytest.fixture(scope="module")
def chest():
    return _chest()


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_same_seed_gives_the_same_bytes_and_another_seed_other_nodules(chest):
    ct, _ = chest
    a = insert_nodules(ct, 11, n_nodules=4)
    b = insert_nodules(ct, 11, n_nodules=4)
    c = insert_nodules(ct, 12, n_nodules=4)
    assert isinstance(a, Inserted) and len(a.nodules) == 4
    assert _digest(a.ct.hu) == _digest(b.ct.hu) and _digest(a.labels) == _digest(b.labels)
    assert [n.to_dict() for n in a.nodules] == [n.to_dict() for n in b.nodules]
    assert _digest(a.ct.hu) != _digest(c.ct.hu)


def test_the_host_is_left_unchanged_and_the_new_ct_keeps_its_geometry(chest):
    ct, _ = chest
    before = _digest(ct.hu)
    out = insert_nodules(ct, 3, n_nodules=3)
    assert _digest(ct.hu) == before
    assert out.ct.hu is not ct.hu and out.ct.hu.dtype == ct.hu.dtype
    assert out.ct.spacing_mm == ct.spacing_mm and out.ct.origin_mm == ct.origin_mm
    assert out.ct.patient_id == ct.patient_id and "synthetic nodule" in out.ct.source
    changed = out.ct.hu != ct.hu
    assert changed.any() and not changed[0].any()  # untouched far from the nodules


def test_nodules_lie_in_the_lungs_outside_the_ignore_region_and_apart(chest):
    ct, lungs = chest
    lesion = np.zeros(ct.shape, bool)
    lesion[14:26, 60:100, 120:150] = True  # a "tumour" in the left lung
    out = insert_nodules(ct, 5, n_nodules=8, ignore=lesion)
    assert len(out.nodules) >= 6
    lab = out.labels
    assert lab.dtype == np.uint8
    assert set(np.unique(lab)) == {0, *range(1, len(out.nodules) + 1)}
    assert [n.label for n in out.nodules] == list(range(1, len(out.nodules) + 1))
    # inside the lungs (the truth stops at the pleura) and never in the grown ignore region
    assert not (lab > 0)[~lungs].any()
    assert out.ignore.dtype == bool and (out.ignore >= lesion).all()
    grown_by = ndimage.distance_transform_edt(~lesion, sampling=SPACING)[out.ignore].max()
    assert IGNORE_MARGIN_MM - 1 <= grown_by <= IGNORE_MARGIN_MM + 0.01
    assert not (out.ignore & (lab > 0)).any()
    # no two nodules touch
    for n in out.nodules:
        other = (lab > 0) & (lab != n.label)
        assert not (ndimage.binary_dilation(lab == n.label, iterations=1) & other).any()


def test_labels_match_the_facts_and_the_nominal_sizes(chest):
    ct, _ = chest
    out = insert_nodules(ct, 8, n_nodules=6, kinds=["solid"] * 6)
    voxel = float(np.prod(SPACING))
    for n in out.nodules:
        mask = out.labels == n.label
        assert n.n_voxels == int(mask.sum()) > 0
        assert n.volume_mm3 == pytest.approx(mask.sum() * voxel, rel=1e-3)
        assert 3.0 <= n.diameter_mm <= 30.0
        sphere = np.pi / 6 * n.diameter_mm**3
        assert 0.2 * sphere <= n.volume_mm3 <= 4.0 * sphere, n
        z, y, x = np.round(n.centre_zyx).astype(int)
        assert out.labels[z, y, x] == n.label or n.location == "juxtapleural"
        assert np.allclose(ct.index_to_lps(n.centre_zyx), n.centre_mm, atol=0.01)


def test_sizes_are_mostly_small(chest):
    ct, _ = chest
    sizes = [n.diameter_mm for s in range(6) for n in insert_nodules(ct, s, n_nodules=6).nodules]
    small = np.mean([3.0 <= d <= 6.0 for d in sizes])
    assert 0.35 <= small <= 0.9 and max(sizes) > 6.0 and min(sizes) >= 3.0


def test_partial_volume_along_z_and_in_plane(chest):
    """A solid nodule on a 2.5 mm grid: the slices and pixels at its edge hold intermediate HU."""
    ct, lungs = chest
    out = insert_nodules(ct, 1, kinds=["solid"], places=[(20.4, 80.0, 60.0)], diameters_mm=[7.0])
    (n,) = out.nodules
    assert n.location == "isolated"
    mask = out.labels == 1
    delta = out.ct.hu.astype(float) - ct.hu.astype(float)
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    centre = int(round(n.centre_zyx[0]))
    footprint = mask[centre]
    full = delta[centre][footprint].mean()
    assert full > 400  # lung (-850) became soft tissue (about 5-60 HU), partly blurred
    profile = [delta[k][footprint].mean() / full for k in range(zs[0] - 2, zs[-1] + 3)]
    for end in (profile[:4], profile[::-1][:4]):  # each end has a partly filled slice
        assert any(0.05 < v < 0.85 for v in end), profile
    ring = ndimage.binary_dilation(footprint, iterations=1) & ~footprint
    edge = footprint & ~ndimage.binary_erosion(footprint)
    assert 0.05 * full < delta[centre][ring].mean() < 0.8 * full
    assert delta[centre][edge].mean() < delta[centre][ndimage.binary_erosion(footprint)].mean()


def test_inserted_noise_looks_like_the_hosts(chest):
    ct, _ = chest
    out = insert_nodules(ct, 2, kinds=["solid"], places=[(20.0, 80.0, 60.0)], diameters_mm=[14])
    assert out.look is not None and 0.7 * NOISE_HU < out.look.noise_hu < 1.3 * NOISE_HU
    plane = np.zeros((1, 3, 3), bool)
    plane[0] = True
    inner = ndimage.binary_erosion(out.labels == 1, plane, iterations=3)
    inner[: int(out.nodules[0].centre_zyx[0]) - 1] = False  # the middle slices only
    inner[int(out.nodules[0].centre_zyx[0]) + 2 :] = False
    assert inner.sum() > 20
    hu = out.ct.hu.astype(float)
    resid = np.concatenate(
        [hu[k][inner[k]] - hu[k][inner[k]].mean() for k in range(40) if inner[k].any()]
    )
    assert 0.6 * NOISE_HU < resid.std() < 1.4 * NOISE_HU


def test_places_by_name_are_honoured(chest):
    ct, lungs = chest
    out = insert_nodules(ct, 4, places=["juxtapleural"] * 3, kinds=["solid"] * 3)
    border = ndimage.distance_transform_edt(lungs, sampling=SPACING)
    for n in out.nodules:
        assert n.location == "juxtapleural"
        assert border[out.labels == n.label].min() <= 2.6  # touches the pleura


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"ignore": np.zeros((3, 3, 3), bool)}, "ignore mask has shape"),
        ({"kinds": ["solid", "bony"]}, "unknown nodule kind"),
        ({"places": ["hilar"]}, "unknown place"),
        ({"n_nodules": 5, "kinds": ["solid"]}, "no more than"),
        ({"n_nodules": -1}, "n_nodules must be"),
    ],
)
def test_bad_settings_are_refused_in_one_sentence(chest, kwargs, words):
    ct, _ = chest
    with pytest.raises(InsertError, match=words):
        insert_nodules(ct, 0, **kwargs)


def test_a_volume_without_lungs_is_refused():
    ct = CtVolume(hu=np.zeros((8, 64, 64), np.int16), spacing_mm=(2.0, 1.0, 1.0))
    with pytest.raises(InsertError, match="no lungs"):
        insert_nodules(ct, 0)


def test_four_nodules_go_into_the_lungs_of_lidc_idri_0001(lidc0001):
    from napari_lungkd.inference.lung_mask import find_lung_mask
    from napari_lungkd.io.load import load_ct

    ct = load_ct(lidc0001)
    out = insert_nodules(ct, 0, n_nodules=4)
    assert len(out.nodules) == 4
    lm = find_lung_mask(ct.hu, ct.spacing_mm)
    for n in out.nodules:
        zz, yy, xx = np.nonzero(out.labels == n.label)
        assert lm.inside[zz, yy // lm.step, xx // lm.step].mean() > 0.95, n
        # the host around the centre was lung before (not chest wall, not mediastinum)
        z, y, x = np.round(n.centre_zyx).astype(int)
        assert np.median(ct.hu[z, y - 2 : y + 3, x - 2 : x + 3]) < -300, n
    assert int((out.ct.hu != ct.hu).sum()) < 0.001 * ct.hu.size
