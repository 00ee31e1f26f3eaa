"""Tubes drawn with the scanner's partial volume, fissure sheets, streaks near bone."""

from __future__ import annotations

import numpy as np

from napari_lungkd.phantom.fissures import Fissure, lobe_of, paint_fissures
from napari_lungkd.phantom.raster import blend_tubes, z_subsamples
from napari_lungkd.phantom.streaks import add_streaks
from napari_lungkd.phantom.tubes import Grid


def test_a_blurred_tube_keeps_its_cross_section_and_fades_when_thin():
    g = Grid((0.0, -10.0, -10.0), (0.5, 0.5, 0.5), (40, 41, 41))
    peaks = []
    for r in (0.3, 0.6, 2.5):
        hu = np.zeros(g.shape, np.float32)
        blend_tubes(hu, g, [[0, 0, -5]], [[0, 0, 30]], [r], [r], 1.0, 0.6, 1)  # along z
        area = hu[20].sum() * 0.25
        assert abs(area - np.pi * r * r) < 0.15 * np.pi * r * r + 0.05
        peaks.append(float(hu[20, 20, 20]))
    assert peaks[0] < 0.3 < peaks[1] < 0.7 < peaks[2] <= 1.0  # sub-mm vessels are faint


def test_overlapping_segments_do_not_add_up_and_order_does_not_matter():
    g = Grid((0.0, -10.0, -10.0), (1.0, 0.5, 0.5), (20, 41, 41))
    p0 = np.array([[0, 0, 2.0], [0, 0, 10.0], [-5, 0, 10.0]])
    p1 = np.array([[0, 0, 10.0], [0, 0, 18.0], [0, 0, 10.0]])
    r = np.array([2.0, 2.0, 1.0])
    a = np.full(g.shape, -850, np.float32)
    b = a.copy()
    blend_tubes(a, g, p0, p1, r, r, 40.0, 0.6, 2)
    blend_tubes(b, g, p0[::-1], p1[::-1], r[::-1], r[::-1], 40.0, 0.6, 2)
    assert np.allclose(a, b, atol=1e-3)
    assert a.max() <= 40.0 + 1e-3 and a[10, 20, 20] > 39.0  # the joint is not brighter


def test_thick_slices_dim_a_thin_vessel_that_runs_in_plane():
    peaks = []
    for sz in (0.625, 2.5):
        n = int(20 / sz)
        g = Grid((0.0, -10.0, -10.0), (sz, 0.5, 0.5), (n, 41, 41))
        hu = np.zeros(g.shape, np.float32)
        z = (n // 2) * sz
        blend_tubes(hu, g, [[-9, 0, z]], [[9, 0, z]], [0.5], [0.5], 1.0, 0.5, z_subsamples(sz))
        peaks.append(float(hu.max()))
    assert peaks[1] < 0.6 * peaks[0]


def test_a_fissure_is_a_thin_denser_sheet_that_splits_the_lobes():
    g = Grid((0.0, -40.0, -40.0), (1.0, 0.7, 0.7), (60, 114, 114))
    hu = np.full(g.shape, -850.0, np.float32)
    lung_w = np.ones(g.shape, bool)
    fis = Fissure(1, "oblique", 30.0, 0.0, -60.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.25)
    paint_fissures(hu, g, [fis], lung_w, 1, 0.6)
    # on the sheet (z = 30 + y) the lung is denser, 5 mm off it it is untouched
    j = 57  # y = -40 + 57 * 0.7 = -0.1 mm
    on = hu[30, j, 60:110].mean()
    off = hu[36, j, 60:110].mean()
    assert -820 < on < -450 and off == -850.0
    assert (hu[:, :, :57] == -850.0).all()  # only on its own side (X > 0)
    pts = np.array([[10.0, 0.0, 40.0], [10.0, 0.0, 20.0]])
    assert lobe_of([fis], 1, pts).tolist() == [0, 1]  # upper above, lower below


def test_streaks_darken_the_line_between_two_dense_objects():
    hu = np.full((2, 128, 128), 40.0, np.float32)
    hu[:, 60:68, 20:28] = 800.0
    hu[:, 60:68, 100:108] = 800.0
    before = hu.copy()
    add_streaks(hu, 1.0, {"strength_hu": 50.0, "width_mm": 3.0, "pairs": 1})
    diff = hu - before
    assert diff[0, 64, 50:80].mean() < -20.0  # dark band between the two
    assert abs(diff[0, 10, 50:80].mean()) < 2.0  # nothing far off the line
    add_streaks(before, 1.0, {"strength_hu": 0.0, "width_mm": 3.0, "pairs": 1})
    assert (before[:, 30:40] == 40.0).all()  # off: nothing drawn
