"""How a synthetic nodule is blended into a real CT so that it looks scanned by the same scanner.

Three things make a pasted lesion look like the host's own (Hu et al., CVPR 2023, lose 4.8 Dice
without edge blur): the *partial volume* of the host's voxels, its *blur* and its *noise*.

* :func:`estimate_look` measures the host: the noise standard deviation in uniform soft tissue
  (the 30th percentile of the local standard deviation in 7x7 windows whose mean is -150..150 HU,
  on a few slices through the lungs), the noise's in-plane correlation (the lag-1 autocorrelation
  of the residual, turned into the width of a Gaussian that makes white noise as correlated), and
  from it the point-spread function: CT kernels that blur more also correlate the noise more, so
  the PSF sigma is taken as the noise's correlation width, clipped to 0.45-1.0 mm.
* :func:`render_box` draws one nodule supersampled (about 2x in-plane, about one in-plane pixel
  along z, so a 5 mm slice averages eight sub-slices) with a one-sub-voxel soft edge, and averages
  it into the host's voxels: the occupancy (0..1) and the occupancy-weighted HU. Along z this is
  the slice's box profile, widened by a Gaussian of 0.35 slice (real slice profiles have tails):
  a 2.5-5 mm slice shows the partial volume of a small nodule.
* :func:`composite` blends it in: the occupancy-weighted HU and the occupancy are blurred with the
  PSF in-plane; inside the nodule the host's smooth signal is replaced while the host's own noise
  (its high-pass residual, clipped to +-2.5 sigma so that vessel edges do not shine through) stays,
  and the low-frequency part of the noise that the high-pass took away is added back as
  synthetic noise of the same correlation. Ground-glass is only ever added (vessels inside a
  ground-glass opacity stay visible, as on real scans).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

HP_SIGMA_PX = 1.0
SSP_EXTRA_SIGMA = 0.35  # slices: widens the box slice profile to a FWHM of about one slice  # in-plane Gaussian that splits the host into smooth signal and noise


@dataclass(frozen=True)
class HostLook:
    """What the host scanner does to an object: noise level and texture, and blur."""

    noise_hu: float
    noise_corr_px: float  # sigma (pixels) of the Gaussian that correlates white noise as the host's
    psf_sigma_mm: float  # in-plane
    slice_mm: float  # the slice profile's width along z (the slice spacing)

    def to_dict(self) -> dict:
        return {k: round(float(v), 3) for k, v in self.__dict__.items()}


def estimate_look(hu: np.ndarray, spacing_mm, lung_slices: np.ndarray) -> HostLook:
    """Measure the host's noise and blur (see the module) on up to 8 slices through the lungs."""
    sz, pix = float(spacing_mm[0]), float(spacing_mm[1])
    zs = np.asarray(lung_slices if len(lung_slices) else np.arange(hu.shape[0]))
    zs = zs[np.linspace(0, len(zs) - 1, min(8, len(zs))).round().astype(int)]
    sds, num, den = [], 0.0, 0.0
    for k in np.unique(zs):
        s = hu[int(k)].astype(np.float32)
        m = ndimage.uniform_filter(s, 7)
        sd = np.sqrt(np.maximum(ndimage.uniform_filter(s * s, 7) - m * m, 0.0))
        cand = (m > -150) & (m < 150) & (s > -1000)
        if cand.sum() < 200:
            continue
        cut = np.percentile(sd[cand], 30)
        sds.append(sd[cand])
        quiet = cand & (sd <= cut)
        e = np.where(quiet, s - m, 0.0)
        pair = quiet[:, :-1] & quiet[:, 1:]
        num += float((e[:, :-1] * e[:, 1:])[pair].sum())
        den += float((0.5 * (e[:, :-1] ** 2 + e[:, 1:] ** 2))[pair].sum())
    if not sds:
        return HostLook(20.0, 0.8, 0.7, sz)
    noise = float(np.percentile(np.concatenate(sds), 30))
    rho = num / den if den > 0 else 0.0
    corr = float(np.sqrt(-1.0 / (4.0 * np.log(rho)))) if 0.02 < rho < 0.97 else 0.3
    corr = float(np.clip(corr, 0.3, 3.0))
    psf = float(np.clip(corr * pix, 0.45, 1.0))
    return HostLook(round(max(noise, 1.0), 3), round(corr, 3), round(psf, 3), sz)


def _fine_axis(n: int, sub: int, start_idx: int, spacing: float, centre: float) -> np.ndarray:
    """mm offsets from ``centre`` of ``sub`` sub-samples per voxel for voxels start..start+n."""
    off = (np.arange(sub) + 0.5) / sub - 0.5
    idx = (start_idx + np.arange(n))[:, None] + off[None, :]
    return (idx.ravel() * spacing - centre).astype(np.float32)


def _pool(a: np.ndarray, sub) -> np.ndarray:
    nz, ny, nx = (a.shape[0] // sub[0], a.shape[1] // sub[1], a.shape[2] // sub[2])
    return a.reshape(nz, sub[0], ny, sub[1], nx, sub[2]).mean(axis=(1, 3, 5))


def render_box(shape, centre_idx, lo, hi, spacing_mm, field, warp, texture_hu, rng):
    """Occupancy and occupancy-weighted HU of one nodule, averaged into the host voxels lo..hi.

    ``field(shape, x, y, z)`` is :func:`~napari_lungkd.phantom.nodules.shape_field`; ``warp`` a
    smooth displacement (mm) applied to the offsets (elastic deformation); ``texture_hu`` the
    amplitude of a smooth texture inside ground-glass. Returns ``(occ, weighted_hu, cavity)``
    at host resolution, float32.
    """
    sz, sy, sx = (float(s) for s in spacing_mm)
    sub_xy = 2 if sy > 0.45 else 1
    sub_z = int(max(1, np.ceil(sz / max(sy, 0.5))))
    sub = (sub_z, sub_xy, sub_xy)
    n = np.asarray(hi) - np.asarray(lo)
    z = _fine_axis(n[0], sub_z, lo[0], sz, centre_idx[0] * sz)[:, None, None]
    y = _fine_axis(n[1], sub_xy, lo[1], sy, centre_idx[1] * sy)[None, :, None]
    x = _fine_axis(n[2], sub_xy, lo[2], sx, centre_idx[2] * sx)[None, None, :]
    x, y, z = warp(x, y, z)
    soft = sy / sub_xy  # a one-sub-voxel soft edge
    xs, ys, zs, rho, radius = field(shape, x, y, z)
    occ = np.clip((radius - rho) / soft + 0.5, 0.0, 1.0).astype(np.float32)
    value = np.full(occ.shape, shape.hu, np.float32)
    if texture_hu > 0:
        tex = rng.standard_normal(tuple(max(2, s // 6) for s in occ.shape)).astype(np.float32)
        tex = ndimage.zoom(tex, np.asarray(occ.shape) / np.asarray(tex.shape), order=1)
        value += texture_hu * tex[: occ.shape[0], : occ.shape[1], : occ.shape[2]]
    if shape.core_ratio > 0:
        core = np.clip((shape.radius_mm * shape.core_ratio - rho) / soft + 0.5, 0.0, 1.0)
        value += core * (shape.core_hu - value)
    cav = np.zeros_like(occ)
    if shape.cavity_ratio > 0:
        o = shape.cavity_offset * shape.radius_mm
        rc = np.sqrt((xs - o[0]) ** 2 + (ys - o[1]) ** 2 + (zs - o[2]) ** 2)
        cav = np.clip((shape.radius_mm * shape.cavity_ratio - rc) / soft + 0.5, 0.0, 1.0)
        value += cav * (-960.0 - value)
    return _pool(occ, sub), _pool(occ * value, sub), _pool(cav.astype(np.float32), sub)


def correlated_noise(rng, shape, corr_px: float) -> np.ndarray:
    """Unit-variance noise correlated in-plane by a Gaussian of ``corr_px`` pixels."""
    white = rng.standard_normal(shape, dtype=np.float32)
    out = ndimage.gaussian_filter(white, sigma=(0.0, corr_px, corr_px), truncate=3.0)
    return out / (float(out.std()) + 1e-9)


def _lowpass_share(corr_px: float) -> float:
    """Share of the host noise's std that the high-pass split puts into the smooth part."""
    imp = np.zeros((41, 41))
    imp[20, 20] = 1.0
    a = ndimage.gaussian_filter(imp, corr_px)
    a /= np.sqrt((a * a).sum())
    b = ndimage.gaussian_filter(a, HP_SIGMA_PX)
    return float(np.sqrt((b * b).sum()))


def composite(host_box, occ, weighted, look: HostLook, pix_mm: float, additive: bool, rng):
    """The host box with the nodule blended in (float32), and the blurred occupancy."""
    host = host_box.astype(np.float32)
    psf = (SSP_EXTRA_SIGMA, look.psf_sigma_mm / pix_mm, look.psf_sigma_mm / pix_mm)
    occ_b = ndimage.gaussian_filter(occ, psf, truncate=3.0)
    val_b = ndimage.gaussian_filter(weighted, psf, truncate=3.0)
    smooth = ndimage.gaussian_filter(host, (0.0, HP_SIGMA_PX, HP_SIGMA_PX), truncate=3.0)
    lim = 2.5 * look.noise_hu
    residual = np.clip(host - smooth, -lim, lim)
    delta = val_b - occ_b * (host - residual)
    if additive:
        delta = np.maximum(delta, 0.0)
    low = look.noise_hu * _lowpass_share(look.noise_corr_px)
    corr = float(np.hypot(look.noise_corr_px, HP_SIGMA_PX))
    noise = correlated_noise(rng, host.shape, corr) * low
    weight = np.sqrt(np.clip(1.0 - (1.0 - occ_b) ** 2, 0.0, 1.0))
    return host + delta + weight * noise, occ_b
