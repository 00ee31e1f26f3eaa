"""Nodule table from a mask: components, size filter, diameters, CSV rows (the pieces of one
nodule: test_nodule_pieces.py; the plausibility flag: test_plausibility.py)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_lungkd.inference.nodules import (
    COLUMNS,
    feret_diameter_mm,
    find_nodules,
    label_nodules,
    largest_section_z,
    nodules_to_rows,
    write_nodules_csv,
)


def ball(shape, centre, radius_mm, spacing_mm):
    grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing_mm))
    return d2 <= radius_mm**2


def test_two_spheres_measured_and_ordered_by_volume():
    spacing = (1.0, 0.5, 0.5)
    mask = ball((40, 80, 80), (10, 20, 20), 5.0, spacing) | ball(
        (40, 80, 80), (30, 60, 60), 3.0, spacing
    )
    prob = np.where(mask, 0.9, 0.1).astype(np.float16)
    hu = np.where(mask, 50, -850).astype(np.int16)
    nods = find_nodules(mask, spacing, hu=hu, probability=prob)
    assert [n.label for n in nods] == [1, 2]
    big, small = nods
    assert big.volume_mm3 == pytest.approx(4 / 3 * np.pi * 5**3, rel=0.05)
    assert big.diameter_mm == pytest.approx(10.0, abs=0.8)
    assert small.diameter_mm == pytest.approx(6.0, abs=0.8)
    assert big.centroid_zyx == pytest.approx((10, 20, 20), abs=0.01)
    assert big.centroid_mm == pytest.approx((10, 10, 10), abs=0.01)
    assert big.n_slices == 11 and big.mean_hu == pytest.approx(50)
    assert big.max_probability == pytest.approx(0.9, abs=1e-3)
    z0, y0, x0, z1, y1, x1 = big.bbox
    assert (z0, z1) == (5, 16)


def test_small_specks_are_dropped_and_diagonal_touch_is_one_nodule():
    mask = np.zeros((5, 20, 20), bool)
    mask[2, 2, 2] = True  # 1 mm3: noise
    mask[1:4, 10:13, 10:13] = True  # 27 mm3
    mask[4, 13, 13] = True  # touches the cube only by a corner: same component (26-connectivity)
    nods = find_nodules(mask, (1, 1, 1))
    assert len(nods) == 1 and nods[0].n_voxels == 28
    assert find_nodules(mask, (1, 1, 1), min_volume_mm3=0.5)[1].volume_mm3 == 1.0
    assert find_nodules(np.zeros((3, 4, 4)), (1, 1, 1)) == []


def test_largest_section_skips_a_hollow_centre_slice():
    spacing = (2.5, 0.7, 0.7)
    mask = ball((12, 40, 40), (5, 20, 20), 6.0, spacing)
    mask[5, 13:28, 13:28] = False  # the centroid's slice cuts through a cavity: a thin rim
    (nod,) = find_nodules(mask, spacing)
    assert int(round(nod.centroid_zyx[0])) == 5
    z = largest_section_z(nod, mask)
    assert z in (4, 6) and mask[z].sum() == max(mask[k].sum() for k in range(12))
    other = np.zeros_like(mask)
    other[6, 10:30, 10:30] = True  # a second model's mask tips the balance to slice 6
    assert largest_section_z(nod, mask, other) == 6
    assert largest_section_z(nod, np.zeros_like(mask)) == 5  # nothing in the box: the centroid


def test_feret_diameter_of_a_rectangle_is_its_diagonal():
    m = np.zeros((10, 10), bool)
    m[2:5, 1:9] = True  # 3 x 8 pixels
    assert feret_diameter_mm(m, (1.0, 1.0)) == pytest.approx(np.hypot(3, 8))
    assert feret_diameter_mm(m, (2.0, 0.5)) == pytest.approx(np.hypot(6, 4))


def test_lps_centroid_with_a_ct_and_csv_rows(tmp_path):
    from napari_lungkd.ct import CtVolume

    mask = np.zeros((4, 10, 10), np.uint8)
    mask[1:3, 4:6, 4:6] = 1
    ct = CtVolume(
        hu=np.zeros((4, 10, 10), np.int16),
        spacing_mm=(2.0, 1.0, 1.0),
        origin_mm=(-5.0, -5.0, 100.0),
    )
    nods = find_nodules(mask, ct.spacing_mm, ct=ct, min_volume_mm3=1)
    assert nods[0].centroid_lps_mm == pytest.approx((-0.5, -0.5, 103.0))
    rows = nodules_to_rows(nods)
    assert list(rows[0]) == list(COLUMNS)
    path = tmp_path / "nodules.csv"
    write_nodules_csv(path, nods)
    read = list(csv.DictReader(path.open()))
    assert float(read[0]["volume_mm3"]) == 16.0 and read[0]["mean_hu"] == ""
    nods2, labels = label_nodules(mask, ct.spacing_mm, ct=ct, min_volume_mm3=1)
    assert nods2 == nods and labels.dtype == np.uint16
    assert labels.max() == 1 and (labels > 0).sum() == 8
    assert read[0]["flag"] == nods[0].flag and read[0]["n_pieces"] == "1"
    write_nodules_csv(path, [])
    assert path.read_text().strip() == ",".join(COLUMNS)
