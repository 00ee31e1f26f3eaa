"""Simulated readers follow TCIA's outline convention, so the LIDC parser recovers their regions."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from scipy import ndimage

from napari_lungkd.lidc.raster import fill_roi
from napari_lungkd.phantom.readers import outline_rois


def _annulus_phantom():
    yy, xx = np.mgrid[:48, :48]
    r = np.hypot(yy - 23.6, xx - 24.3)
    ring = ((r < 11.0) & (r >= 4.0)).astype(np.uint8)
    labels = np.zeros((3, 48, 48), np.uint8)
    labels[1] = ring
    return SimpleNamespace(labels=labels, spacing_mm=(2.0, 0.7, 0.7))


def test_outlines_are_first_pixels_outside_and_holes_are_exclusions():
    ph = _annulus_phantom()
    box = ndimage.find_objects(ph.labels)[0]
    rois = outline_rois(ph, 1, box, bias_mm=0.0, jitter_mm=0.0, rng=np.random.default_rng(0))
    truth = ph.labels[1].astype(bool)
    assert {r.z_index for r in rois} == {1}
    inc = [r for r in rois if r.inclusion]
    exc = [r for r in rois if not r.inclusion]
    assert len(inc) == 1 and len(exc) == 1
    for x, y in inc[0].points_xy:  # TCIA: the edge map is the first pixel outside the nodule
        assert not truth[y, x]
        assert truth[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].any()
    for x, y in exc[0].points_xy:  # the hole's outline lies in the hole
        assert not truth[y, x]
    filled = fill_roi(inc[0].points_xy, truth.shape, (0, 0), include_edges=False)
    filled &= ~fill_roi(exc[0].points_xy, truth.shape, (0, 0), include_edges=True)
    assert np.array_equal(filled, truth)


def test_bias_grows_or_shrinks_the_outline():
    ph = _annulus_phantom()
    box = ndimage.find_objects(ph.labels)[0]
    sizes = []
    for bias in (-0.8, 0.0, 0.8):
        rois = outline_rois(ph, 1, box, bias_mm=bias, jitter_mm=0.0, rng=np.random.default_rng(0))
        outer = [r for r in rois if r.inclusion][0]
        sizes.append(fill_roi(outer.points_xy, (48, 48), (0, 0), include_edges=False).sum())
    assert sizes[0] < sizes[1] < sizes[2]
