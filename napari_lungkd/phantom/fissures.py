"""The interlobar fissures: where they run, which lobe a point belongs to, and how they look.

Each lung has an oblique (major) fissure, a surface that runs from high at the back to low at the
front, through the hilum, at 40-55 degrees; the right lung also has the horizontal (minor) fissure,
nearly level at the height of the hilum, in front of the oblique one. A fissure is two layers of
visceral pleura, 0.3-0.6 mm of tissue: drawn as a Gaussian sheet of that area with the scanner's
blur and averaged across the slice thickness (analytically), it is a thin line a little denser than
the lung on a thin slice and a faint haze on a thick one, as on real CT. The lung trees are grown
per lobe, so that no vessel crosses a fissure (they are the avascular planes a reader sees).
Coordinates are the body frame of :mod:`napari_lungkd.phantom.anatomy` (X left, Y back, Z up, mm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

HU_PLEURA = 30.0


@dataclass(frozen=True)
class Fissure:
    """A height field ``z = z0 + slope * u + curve * u^2 + wave`` with ``u = y - y0 + lateral *
    |x - x0|``: the fissure runs further forward towards the side wall, so that an axial slice
    cuts it as a curved line from the hilum to the chest wall, not a straight one."""

    side: int  # -1 right lung, +1 left lung
    kind: str  # "oblique" | "horizontal"
    z0: float
    y0: float
    x0: float
    slope: float
    curve: float
    lateral: float
    wave_mm: float
    wave_phase: float
    half_thickness_mm: float

    def _u(self, x, y):
        return np.asarray(y, np.float64) - self.y0 + self.lateral * np.abs(np.asarray(x) - self.x0)

    def height(self, x, y):
        u = self._u(x, y)
        w = self.wave_mm * np.sin(np.asarray(x) * 0.045 + self.wave_phase) * np.cos(u * 0.03)
        return self.z0 + self.slope * u + self.curve * u * u + w

    def gradient_norm(self, x, y):
        """sqrt(1 + |grad z|^2), approximately (the wave's slope is small)."""
        g = self.slope + 2.0 * self.curve * self._u(x, y)
        gx = g * self.lateral * np.sign(np.asarray(x) - self.x0)
        return np.sqrt(1.0 + gx * gx + g * g)


def sample_fissures(rng, anatomy, hilum_xyz: dict[int, tuple]) -> list[Fissure]:
    """The fissures of one patient; ``hilum_xyz[side]`` is where each lung's tree starts."""
    out = []
    for side in (-1, 1):
        hx, hy, hz = hilum_xyz[side]
        out.append(
            Fissure(
                side=side,
                kind="oblique",
                z0=hz + rng.uniform(-8.0, 8.0),
                y0=hy,
                x0=hx,
                slope=rng.uniform(0.85, 1.25) * (1.08 if side == 1 else 1.0),
                curve=rng.uniform(0.0005, 0.003),
                lateral=rng.uniform(0.25, 0.6),
                wave_mm=rng.uniform(1.0, 5.0),
                wave_phase=rng.uniform(0, 2 * math.pi),
                half_thickness_mm=rng.uniform(0.12, 0.28),
            )
        )
    hx, hy, hz = hilum_xyz[-1]
    out.append(
        Fissure(
            side=-1,
            kind="horizontal",
            z0=hz + rng.uniform(-4.0, 12.0),
            y0=hy,
            x0=hx,
            slope=rng.uniform(-0.12, 0.06),
            curve=rng.uniform(-0.0008, 0.0008),
            lateral=rng.uniform(-0.3, 0.3),
            wave_mm=rng.uniform(0.5, 3.0),
            wave_phase=rng.uniform(0, 2 * math.pi),
            half_thickness_mm=rng.uniform(0.12, 0.25),
        )
    )
    return out


def lobe_of(fissures: list[Fissure], side: int, xyz: np.ndarray) -> np.ndarray:
    """Lobe index per point of one lung: 0 upper, 1 lower, 2 middle (right lung only)."""
    x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    lobe = np.zeros(len(xyz), np.int64)
    for f in fissures:
        if f.side != side:
            continue
        if f.kind == "oblique":
            lobe[z < f.height(x, y)] = 1
    for f in fissures:
        if f.side == side and f.kind == "horizontal":
            lobe[(lobe == 0) & (z < f.height(x, y))] = 2
    return lobe


def paint_fissures(hu, grid, fissures, lung_w, f: int, sigma_mm: float) -> None:
    """Blend the fissure sheets into ``hu`` (float32, z y x) inside the lungs.

    ``lung_w`` is the lung mask on the working grid, ``f`` times coarser in-plane than ``hu``. The
    sheet's profile across its normal is a Gaussian of area ``2 h`` and width ``sigma_mm`` (blur
    and thickness), averaged over the slice thickness along z (the exact box average).
    """
    nz, ny, nx = grid.shape
    sz, sy, sx = grid.spacing_mm
    cols = lung_w.any(axis=0)  # where either lung is, in-plane (working grid)
    for fis in fissures:
        py, px = np.nonzero(cols[np.arange(ny) // f][:, np.arange(nx) // f])
        x = grid.start_mm[2] + sx * px
        y = grid.start_mm[1] + sy * py
        on_side = (x * fis.side) > 0
        py, px, x, y = py[on_side], px[on_side], x[on_side], y[on_side]
        height = fis.height(x, y)
        order = np.argsort(height, kind="stable")
        py, px, x, y, height = py[order], px[order], x[order], y[order], height[order]
        c = 1.0 / fis.gradient_norm(x, y)  # d(normal distance) / dz
        front = None
        if fis.kind == "horizontal":  # only in front of (above) the oblique fissure
            ob = next(o for o in fissures if o.side == fis.side and o.kind == "oblique")
            front = ob.height(x, y)
        sig_n = math.sqrt(sigma_mm**2 + (fis.half_thickness_mm**2) / 3.0)
        k = 1.0 / (math.sqrt(2.0) * sig_n)
        reach = 3.0 * sig_n + 0.5 * sz
        reach_z = reach / max(float(c.min(initial=1.0)), 0.05)
        for kz in range(nz):
            z = grid.start_mm[0] + sz * kz
            a, b = np.searchsorted(height, (z - reach_z, z + reach_z))
            if b <= a:
                continue
            sl = slice(a, b)
            dn = (z - height[sl]) * c[sl]
            band = np.abs(dn) < reach
            band &= lung_w[kz, py[sl] // f, px[sl] // f]
            if front is not None:
                band &= z > front[sl]
            if not band.any():
                continue
            d, cc = dn[band], c[sl][band]
            hb = cc * (sz / 2.0)
            gain = 2.0 * fis.half_thickness_mm / (2.0 * hb)
            occ = np.minimum(gain * 0.5 * (erf((d + hb) * k) - erf((d - hb) * k)), 1.0)
            jy, jx = py[sl][band], px[sl][band]
            v = hu[kz, jy, jx]
            hu[kz, jy, jx] = v + occ.astype(np.float32) * (np.float32(HU_PLEURA) - v)
