"""The model-free lung crop: finds the lungs in a synthetic chest, skips slices without lung."""

from __future__ import annotations

import numpy as np

from napari_lungkd.inference.lung_region import find_lung_region


def chest(n_slices=40, size=128, lung_slices=slice(8, 32), fov_padding=True):
    hu = np.full((n_slices, size, size), -1000, np.int16)
    yy, xx = np.mgrid[:size, :size]
    c = size / 2
    if fov_padding:  # -2048 outside the scanner's circular field of view, as in LIDC-IDRI-0001
        hu[:, (yy - c) ** 2 + (xx - c) ** 2 > (0.5 * size) ** 2] = -2048
    hu[:, ((yy - c) / (0.35 * size)) ** 2 + ((xx - c) / (0.45 * size)) ** 2 < 1] = 40
    lungs = np.zeros((size, size), bool)
    for cx in (0.32 * size, 0.68 * size):
        lungs |= ((yy - 0.5 * size) / (0.22 * size)) ** 2 + ((xx - cx) / (0.11 * size)) ** 2 < 1
    hu[lung_slices][:, lungs] = -850
    return hu, lungs


def test_box_contains_the_lungs_is_a_multiple_of_32_and_skips_other_slices():
    hu, lungs = chest()
    region = find_lung_region(hu, (2.5, 1.0, 1.0), margin_slices=0)
    assert region.found
    assert region.z_indices.tolist() == list(range(8, 32))
    y0, y1, x0, x1 = region.box_yx
    rows, cols = np.nonzero(lungs)
    assert y0 <= rows.min() and y1 > rows.max() and x0 <= cols.min() and x1 > cols.max()
    assert (y1 - y0) % 32 == 0 and (x1 - x0) % 32 == 0
    assert region.fraction < 0.5
    assert region.crop(hu).shape == region.crop_shape
    pasted = region.paste(np.ones(region.crop_shape, np.uint8))
    assert pasted.shape == hu.shape and pasted[:8].sum() == 0


def test_no_body_means_the_whole_volume():
    hu = np.full((5, 64, 64), -1000, np.int16)
    region = find_lung_region(hu, (1.0, 1.0, 1.0))
    assert not region.found and region.crop_shape == hu.shape


def test_fast_on_a_full_size_ct():
    hu, _ = chest(n_slices=133, size=512, lung_slices=slice(20, 125))
    region = find_lung_region(hu, (2.5, 0.7, 0.7))
    assert region.found and len(region.z_indices) == 107  # 105 lung slices + 1 margin each side
    assert region.seconds < 2.0  # about 0.1 s on an idle core; generous for a shared machine


def test_chunk_boxes_follow_the_lungs_along_z():
    hu = np.full((24, 128, 128), -1000, np.int16)
    yy, xx = np.mgrid[:128, :128]
    hu[:, ((yy - 64) / 50) ** 2 + ((xx - 64) / 58) ** 2 < 1] = 40
    for z in range(2, 22):  # the lungs widen from the apex down
        r = 8 + 2 * (z - 2)
        for cx in (40, 88):
            hu[z, ((yy - 64) / (r * 0.9)) ** 2 + ((xx - cx) / (r * 0.5)) ** 2 < 1] = -850
    region = find_lung_region(hu, (2.5, 1.0, 1.0), margin_slices=0, margin_mm=2.0)
    chunks = region.chunks(4)
    assert sum(len(z) for z, _ in chunks) == len(region.z_indices) == 20
    areas = [(b[1] - b[0]) * (b[3] - b[2]) for _, b in chunks]
    y0, y1, x0, x1 = region.box_yx
    assert areas[0] < areas[-1] <= (y1 - y0) * (x1 - x0)
    for z, (b0, b1, c0, c1) in chunks:  # every lung pixel of each slice is inside its chunk's box
        lung = hu[z] == -850
        assert not lung[:, :b0].any() and not lung[:, b1:].any()
        assert not lung[:, :, :c0].any() and not lung[:, :, c1:].any()
        assert (b1 - b0) % 32 == 0 and (c1 - c0) % 32 == 0


def test_a_crop_through_the_lung_still_finds_the_lung_and_room_air_is_not_lung():
    # a crop of the right lung (as elastix_lung_crops): lung tissue touches every border
    rng = np.random.default_rng(0)
    crop = (-860 + rng.normal(0, 30, size=(20, 80, 60))).astype(np.int16)
    crop[:, :, 50:] = 40  # chest wall on one side
    region = find_lung_region(crop, (2.5, 1.4, 1.4))
    assert region.found and region.lung_volume_ml > 100
    # a body in room air: the air around it (about -1000 HU) touches the border and is not lung
    body = np.full((20, 96, 96), -1000, np.int16) + rng.normal(0, 20, size=(20, 96, 96)).astype(
        np.int16
    )
    yy, xx = np.mgrid[:96, :96]
    body[:, (yy - 48) ** 2 + (xx - 48) ** 2 < 40**2] = 40
    body[:, (yy - 48) ** 2 + (xx - 30) ** 2 < 10**2] = -850
    region = find_lung_region(body, (2.5, 1.0, 1.0))
    y0, y1, x0, x1 = region.box_yx
    assert region.found and x1 <= 64 and region.lung_volume_ml < 20
