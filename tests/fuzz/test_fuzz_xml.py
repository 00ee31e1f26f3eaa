"""Hostile LIDC XML (tests/hostile_files.py): refused with one sentence, or drawn quickly with a
warning; never a traceback, never gigabytes, never every outline lost to one bad number."""

from __future__ import annotations

import time

import pytest
from hostile_files import XML_CASES
from hostile_inputs import snapshot
from lidc_xml_builders import fake_ct

from napari_lungkd.errors import LidcXmlError
from napari_lungkd.lidc import annotate, read_lidc_xml


@pytest.mark.parametrize("case", XML_CASES, ids=str)
def test_hostile_xml_is_refused_or_drawn_with_a_warning(tmp_path, case):
    path = case.build(tmp_path)
    before = snapshot(tmp_path)
    t0 = time.perf_counter()
    if case.expect == "refuse":
        with pytest.raises(LidcXmlError) as info:
            annotate(read_lidc_xml(path), ct=fake_ct())
        message = str(info.value)
        assert str(path) in message and case.says in message
        assert "\n" not in message
    else:
        read = read_lidc_xml(path)
        for ct in (fake_ct(), None):  # on a CT's grid and on the XML's own grid
            masks = annotate(read, ct=ct)
            if case.says and ct is not None:
                assert any(case.says in w for w in masks.warnings), masks.warnings
            good = [m for m in masks.annotations if m.nodule_id == "good"]
            assert all(m.voxels == 25 for m in good)  # the sound outline is still drawn
            assert all(m.box.size < 10_000_000 for m in masks.annotations)
    assert time.perf_counter() - t0 < 20
    assert snapshot(tmp_path) == before


def test_slice_of_is_logarithmic_not_a_sort_per_roi():
    import numpy as np

    from napari_lungkd.lidc.raster import _make_grid

    z = np.random.default_rng(0).permutation(np.arange(2000) * 1.25)
    grid = _make_grid(z, (512, 512), None, (1.25, 0.7, 0.7), "ct", None)
    t0 = time.perf_counter()
    for q in np.linspace(0, 1999 * 1.25, 100_000):
        k, how = grid.slice_of(float(q), None)
        assert how == "z" and abs(z[k] - q) <= 0.63
    assert time.perf_counter() - t0 < 5  # a sort per call (the old way) takes minutes
    assert grid.slice_of(float("nan"), None) == (None, "miss")


def test_outline_pixels_keep_every_lattice_point():
    import numpy as np

    from napari_lungkd.lidc.bounds import outline_length
    from napari_lungkd.lidc.raster import outline_pixels

    pts = np.array([[0, 0], [6, 0], [6, 4], [0, 4], [0, 4]])  # a repeated point, open contour
    rc = outline_pixels(pts)
    assert len(rc) == outline_length(pts)
    assert {tuple(p) for p in rc.tolist()} == (
        {(0, c) for c in range(7)} | {(4, c) for c in range(7)}
        | {(r, 0) for r in range(5)} | {(r, 6) for r in range(5)}
    )  # fmt: skip
