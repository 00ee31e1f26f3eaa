"""A small synthetic HU chest to insert nodules into (tests of phantom.insert and the CLI)."""

from __future__ import annotations

import numpy as np

from napari_lungkd.ct import CtVolume

SPACING = (2.5, 0.8, 0.8)
NOISE_HU = 15.0


def synthetic_chest(seed: int = 0):
    """An HU chest (z, y, x): air outside, soft-tissue body, two lungs, a few vessels, noise.

    Returns the CtVolume and the true lung mask (vessels inside it included)."""
    nz, ny, nx = 40, 160, 192
    z, y, x = np.ogrid[:nz, :ny, :nx]
    yc, xc = (y - 80) * SPACING[1], (x - 96) * SPACING[2]
    body = (yc / 58.0) ** 2 + (xc / 70.0) ** 2 < 1
    lungs = np.zeros((nz, ny, nx), bool)
    zc = (z - 20) * SPACING[0]
    for side in (-1, 1):
        lungs |= ((yc / 40.0) ** 2 + ((xc - side * 32.0) / 24.0) ** 2 + (zc / 60.0) ** 2) < 1
    hu = np.where(np.broadcast_to(body, lungs.shape), 30.0, -1000.0)
    hu[lungs] = -850.0
    vessels = np.zeros_like(lungs)
    for side in (-1, 1):  # tubes along z and along x inside each lung
        vessels |= ((yc - 8) ** 2 + (xc - side * 30.0) ** 2 < 2.0**2) & lungs
        vessels |= ((yc + 14) ** 2 + (zc - 10) ** 2 < 1.6**2) & lungs
    hu[vessels] = 40.0
    rng = np.random.default_rng(seed)
    hu = hu + rng.normal(0, NOISE_HU, hu.shape)
    ct = CtVolume(
        hu=np.rint(hu).astype(np.int16),
        spacing_mm=SPACING,
        origin_mm=(-76.0, -64.0, -50.0),
        patient_id="SYNTH-HOST",
        source="synthetic host",
    )
    return ct, lungs
