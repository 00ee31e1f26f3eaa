"""The synthetic scanner: field of view and spacing, resolution (PSF), noise and padding.

The anatomy is painted on a coarse grid (every second pixel in-plane for 512x512 scans) and
brought to the full matrix with linear interpolation, which is also the first part of the blur;
fine structures are painted at full resolution with a partial-volume ramp one PSF wide. Noise is
correlated (a CT-like noise power spectrum: ramp filter times an apodising window), drawn as a
small stack of full-size noise slices that are rolled and reused per slice, so that noise costs one
addition per voxel. Outside the circular field of view pixels hold the padding value, as on a
real scanner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PADDING_HU = -2048
SLICE_SPACINGS_MM = (0.625, 0.75, 1.0, 1.25, 1.5, 1.8, 2.0, 2.5)
SLICE_WEIGHTS = (0.08, 0.05, 0.12, 0.2, 0.08, 0.12, 0.15, 0.2)
SHARP_KERNELS = ("B70f", "LUNG", "BONE", "FC52")
SOFT_KERNELS = ("STANDARD", "B30f", "B19f", "FC01", "B45f")
KERNELS = SOFT_KERNELS + SHARP_KERNELS
CLASSIC_KERNELS = ("STANDARD", "BONE", "LUNG", "B30f", "B45f", "FC01")
THICK_SLICES_MM = (3.0, 5.0)  # the varied phantom only
"""The kernels of the classic phantom (the sample and the bundled weights' training data)."""


@dataclass(frozen=True)
class Scanner:
    """Acquisition and reconstruction settings of one synthetic scan."""

    size: int
    n_slices: int
    spacing_mm: tuple[float, float, float]  # (z, y, x)
    fov_mm: float
    noise_hu: float
    psf_sigma_mm: float
    kernel: str
    noise_cutoff: float  # cycles/mm where the noise power spectrum rolls off (sharp: high)
    hu_offset: float  # calibration offset of this scanner (HU, added to every voxel)
    body_offset_mm: tuple[float, float]  # body centre relative to the image centre (X, Y)
    table_y_mm: float  # table top in the body frame
    z_start_mm: float  # LPS z of the lowest slice


def sample_scanner(rng, anatomy, size: int, n_slices: int | None, varied: bool = False) -> Scanner:
    """Pick spacing, field of view, noise and the patient's position in the scanner.

    ``varied``: randomise the scanner per case (kernel soft to sharp, noise 8-60 HU with a
    matching texture, small HU offsets); otherwise the classic phantom's narrower scanner, which
    draws the same random numbers as before (the sample and the bundled weights' data)."""
    body_w = 2 * anatomy.half_width_mm * 1.06
    fov = float(np.clip(rng.uniform(body_w - 5, body_w + 60), 300.0, 480.0))
    pix = round(fov / size, 6) if size >= 256 else round(fov / size, 4)
    fov = pix * size
    if n_slices is None:
        sz = float(rng.choice(SLICE_SPACINGS_MM, p=np.asarray(SLICE_WEIGHTS) / sum(SLICE_WEIGHTS)))
        n = int(round(anatomy.length_mm / sz))
    else:
        n = int(n_slices)
        sz = round(anatomy.length_mm / n, 4)
    back = anatomy.half_depth_post_mm * 1.06
    table_y = back + anatomy.table_gap_mm
    # put the table low in the image, as scanners do
    dy = float(fov / 2 - table_y - rng.uniform(40, 70))
    dx = float(rng.uniform(-12, 12))
    if varied:
        # per-case scanner randomisation: kernel from soft to sharp (B19f..B70f), noise 8-60 HU
        # (sharper kernels are noisier), noise texture following the kernel, small HU offsets;
        # a quarter of the cases thick slices (3 or 5 mm) as many real archives hold
        if n_slices is None and rng.random() < 0.25:
            sz = float(rng.choice(THICK_SLICES_MM))
            n = int(round(anatomy.length_mm / sz))
        psf = float(rng.uniform(0.3, 0.9))
        noise = float(np.exp(rng.uniform(np.log(8.0), np.log(40.0))) * (0.6 / psf) ** 0.5)
        noise = float(np.clip(noise, 8.0, 60.0))
        kernel = str(rng.choice(SHARP_KERNELS if psf < 0.45 else SOFT_KERNELS))
        cutoff = float(np.clip(0.2 / psf, 0.25, 0.7))
        offset = float(rng.uniform(-12.0, 12.0))
    else:
        noise = float(rng.uniform(14, 30))
        psf = float(rng.uniform(0.35, 0.6))
        kernel = str(rng.choice(CLASSIC_KERNELS))
        cutoff, offset = 0.42, 0.0
    return Scanner(
        size=size,
        n_slices=n,
        spacing_mm=(sz, pix, pix),
        fov_mm=fov,
        noise_hu=noise,
        psf_sigma_mm=psf,
        kernel=kernel,
        noise_cutoff=cutoff,
        hu_offset=offset,
        body_offset_mm=(dx, dy),
        table_y_mm=table_y,
        z_start_mm=round(float(-rng.uniform(60, 120) - anatomy.length_mm), 3),
    )


def _up_last(a: np.ndarray, n: int, out: np.ndarray) -> None:
    """Linear 2x upsampling along the last axis of ``a`` into ``out`` (length ``n``)."""
    m = a.shape[-1]
    out[..., 0::2] = a[..., : (n + 1) // 2]
    odd = out[..., 1::2]
    k = min(odd.shape[-1], m - 1)
    np.add(a[..., :k], a[..., 1 : k + 1], out=odd[..., :k])
    odd[..., :k] *= 0.5
    if odd.shape[-1] > k:
        odd[..., k:] = a[..., m - 1 : m]


def upsample2(a: np.ndarray, out_n: tuple[int, int]) -> np.ndarray:
    """Linear 2x upsampling of the last two axes (samples at even output indices are kept).

    Works slice by slice so that the temporaries stay in the processor's cache.
    """
    ny, nx = out_n
    out = np.empty(a.shape[:-2] + (ny, nx), np.float32)
    tmp = np.empty(a.shape[-2:-1] + (nx,), np.float32)
    for k in range(a.shape[0]):
        _up_last(a[k], nx, tmp)
        _up_last(tmp.T, ny, out[k].T)
    return out


def noise_stack(rng, size: int, pix_mm: float, n: int = 6, fc: float = 0.42) -> np.ndarray:
    """``n`` slices of unit-variance correlated noise with a CT-like noise power spectrum
    (a ramp times a Gaussian window that rolls off at ``fc`` cycles/mm)."""
    from scipy import fft

    fy = np.fft.fftfreq(size, d=pix_mm)
    fx = np.fft.rfftfreq(size, d=pix_mm)
    fr = np.hypot(fy[:, None], fx[None, :])
    amp = np.sqrt(fr * np.exp(-((fr / fc) ** 2))).astype(np.float32)
    white = rng.standard_normal((n, size, size), dtype=np.float32)
    out = fft.irfft2(fft.rfft2(white, workers=1) * amp[None], s=(size, size), workers=1)
    out = out.astype(np.float32)
    out /= out.std() + 1e-9
    return out


def add_noise(hu: np.ndarray, rng, scanner: Scanner, body: np.ndarray | None = None) -> None:
    """Add correlated noise in place, one rolled noise slice per image slice."""
    nz, ny, nx = hu.shape
    stack = noise_stack(rng, ny, scanner.spacing_mm[1], fc=scanner.noise_cutoff)
    stack *= scanner.noise_hu
    picks = rng.integers(0, stack.shape[0], nz)
    shifts = rng.integers(0, ny, (nz, 2))
    for k in range(nz):
        hu[k] += np.roll(stack[picks[k]], tuple(shifts[k]), axis=(0, 1))[:ny, :nx]


def fov_mask(size: int) -> np.ndarray:
    """The reconstruction circle: True inside the scanner's field of view."""
    c = (size - 1) / 2.0
    yy, xx = np.ogrid[:size, :size]
    return (yy - c) ** 2 + (xx - c) ** 2 <= (size / 2.0) ** 2


def paint_table(hu: np.ndarray, y_mm: np.ndarray, x_mm: np.ndarray, table_y_mm: float) -> None:
    """The patient table: a thin dense curved shell with foam under it."""
    yy, xx = np.meshgrid(y_mm, x_mm, indexing="ij")
    top = table_y_mm + 0.00045 * xx**2
    shell = (yy > top) & (yy < top + 2.5) & (np.abs(xx) < 230)
    foam = (yy >= top + 2.5) & (yy < top + 28) & (np.abs(xx) < 220)
    hu[:, foam] = -820.0
    hu[:, shell] = 250.0
