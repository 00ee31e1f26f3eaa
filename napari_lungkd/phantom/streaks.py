"""Streaks near bone: the beam-hardening and photon-starvation artefact of a real scanner.

Along a ray that crosses two dense objects (vertebra and rib, sternum and spine, a rib on each
side, a contrast-filled vessel) the beam hardens and the reconstruction undershoots: a dark band
between the two objects, and a thin dark streak with bright edges that runs on past them along
the same line.
Per slice the dense objects (above 300 HU, on a 4x coarser grid) are found, and for the heaviest
pairs a dark band (Gaussian across, ``width_mm``) is drawn between them and a fainter streak
along the rest of the line, fading over some centimetres; the pattern is drawn on the coarse grid (it is smooth) and brought up to
the full matrix. The strength is drawn per case (:func:`sample_streaks`; off for a third of them).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_lungkd.phantom.scanner import upsample2

DENSE_HU = 300.0


def sample_streaks(rng) -> dict:
    """This case's streak setting: ``strength_hu`` (0 for about a third) and ``width_mm``."""
    on = rng.random() < 0.67
    return {
        "strength_hu": float(rng.uniform(12.0, 55.0)) if on else 0.0,
        "width_mm": float(rng.uniform(1.8, 4.5)),
        "pairs": int(rng.integers(2, 6)),
    }


def add_streaks(hu: np.ndarray, pix_mm: float, setting: dict) -> None:
    """Add the streak pattern of ``setting`` to ``hu`` (float32, z y x; before noise)."""
    amp = setting["strength_hu"]
    if amp <= 0:
        return
    nz, ny, nx = hu.shape
    step = 4 if ny % 4 == 0 and nx % 4 == 0 and ny >= 128 else 1
    cy, cx = ny // step, nx // step
    cpix = pix_mm * step
    yy, xx = np.mgrid[0:cy, 0:cx].astype(np.float32)
    w = setting["width_mm"] / cpix
    for k in range(nz):
        small = hu[k, ::step, ::step]
        dense = small > DENSE_HU
        if not dense.any():
            continue
        lab, n = ndimage.label(dense)
        if n < 2:
            continue
        excess = np.where(dense, small - DENSE_HU + 200.0, 0.0)
        mass = ndimage.sum_labels(excess, lab, np.arange(1, n + 1))
        top = np.argsort(-mass, kind="stable")[:5]
        top = top[mass[top] > 0.02 * mass[top[0]]]
        if len(top) < 2:
            continue
        cen = np.array(ndimage.center_of_mass(excess, lab, top + 1), np.float32)
        pairs = [(a, b) for ia, a in enumerate(top) for b in top[ia + 1 :]]
        weight = np.array([np.sqrt(mass[a] * mass[b]) for a, b in pairs])
        weight /= weight.max()
        field = np.zeros((cy, cx), np.float32)
        for (a, b), wt in list(zip(pairs, weight))[: setting["pairs"]]:
            ia, ib = int(np.flatnonzero(top == a)[0]), int(np.flatnonzero(top == b)[0])
            p, q = cen[ia], cen[ib]
            d = q - p
            length = float(np.hypot(*d))
            if length < 3:
                continue
            u = d / length
            along = (yy - p[0]) * u[0] + (xx - p[1]) * u[1]
            across = (yy - p[0]) * u[1] - (xx - p[1]) * u[0]
            between = np.clip(np.minimum(along, length - along) / 4.0, 0.0, 1.0)
            band = np.exp(-0.5 * (across / w) ** 2)
            # a thin dark line with bright flanks, fading with the distance past the objects
            line = np.exp(-0.5 * (across / (0.5 * w)) ** 2) - 0.5 * np.exp(
                -0.5 * (across / (1.4 * w)) ** 2
            )
            past = np.maximum(-along, along - length)
            fade = np.exp(-np.maximum(past, 0.0) * (cpix / 70.0)) * (1.0 - between)
            # dark between the two objects, a fainter streak along the rest of the ray
            field -= wt * (band * between + 0.4 * line * fade)
        if step == 1:
            hu[k] += amp * field
            continue
        up = upsample2(upsample2(field[None], (2 * cy, 2 * cx)), (ny, nx))[0]
        hu[k] += np.float32(amp) * up
