"""3-D patches around candidates: centred, isotropic in mm whatever the slice spacing, air outside."""

import numpy as np

from napari_lungkd.inference.candidate_patches import candidate_patches


def _ball_ct(spacing, centre_mm, r_mm, shape):
    zz, yy, xx = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij")
    d2 = (zz - centre_mm[0]) ** 2 + (yy - centre_mm[1]) ** 2 + (xx - centre_mm[2]) ** 2
    return np.where(d2 <= r_mm**2, 50.0, -900.0).astype(np.float32)


def test_a_ball_is_centred_and_round_in_the_patch_for_thin_and_thick_slices():
    for spacing in ((1.0, 0.7, 0.7), (2.5, 0.7, 0.7)):
        shape = (int(60 / spacing[0]), int(60 / spacing[1]), int(60 / spacing[2]))
        hu = _ball_ct(spacing, (30.0, 30.0, 30.0), 6.0, shape)
        centre_vox = [30.0 / s for s in spacing]
        (p,) = candidate_patches(hu, spacing, [centre_vox])
        assert p.shape == (32, 32, 32) and p.dtype == np.int16
        inside = p > -425
        extent = [
            np.ptp(np.nonzero(inside.any(axis=tuple(a for a in range(3) if a != k)))[0]) + 1
            for k in range(3)
        ]
        assert all(10 <= e <= 14 for e in extent), (spacing, extent)  # ~12 mm in every axis
        com = np.array(np.nonzero(inside)).mean(axis=1)
        assert np.allclose(com, 15.5, atol=1.0), com


def test_outside_the_ct_is_air_and_no_candidates_give_an_empty_array():
    hu = np.zeros((10, 10, 10), np.float32)
    (p,) = candidate_patches(hu, (1.0, 1.0, 1.0), [[0.0, 0.0, 0.0]])
    assert p[0, 0, 0] == -1000 and p[31, 31, 31] == -1000 and p[16, 16, 16] == 0
    assert candidate_patches(hu, (1, 1, 1), np.zeros((0, 3))).shape == (0, 32, 32, 32)
