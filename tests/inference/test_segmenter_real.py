"""The lung crop on the real LIDC-IDRI-0001 CT keeps every voxel the radiologists outlined."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.realdata


def test_lung_crop_of_lidc0001_keeps_all_reader_outlines(lidc0001):
    from napari_lungkd.inference.lung_region import find_lung_region
    from napari_lungkd.io import load_ct
    from napari_lungkd.lidc import annotate

    ct = load_ct(lidc0001)
    region = find_lung_region(ct.hu, ct.spacing_mm)
    assert region.found and region.seconds < 2.0
    assert 2000 < region.lung_volume_ml < 9000  # an adult's two lungs (and airways)
    assert region.fraction < 0.5
    covered = np.zeros(ct.shape, bool)
    for z, (y0, y1, x0, x1) in region.chunks(8):
        covered[z, y0:y1, x0:x1] = True
    pixels = sum(len(z) * (b[1] - b[0]) * (b[3] - b[2]) for z, b in region.chunks(8))
    assert pixels / (ct.shape[1] * ct.shape[2]) < 0.35 * ct.shape[0]  # about a third of the CT
    lidc = annotate(lidc0001 / "069.xml", ct=ct)
    readers = np.zeros(ct.shape, bool)
    for vol in lidc.reader_volumes():
        readers |= vol > 0
    assert readers.sum() > 100
    assert covered[readers].all()
