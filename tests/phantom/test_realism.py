"""The phantom against what real chest CT measures (numbers from bench/phantom_realism.py)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_lungkd.inference.lung_mask import find_lung_mask
from napari_lungkd.phantom import make_phantom
from napari_lungkd.phantom.scanner import sample_scanner

# vessel cross-sections (1-80 mm², > -500 HU) per cm² of lung more than 5 mm from the pleura, per
# slice (median): 0.08-0.52 on the seven real chests of ../shared/realdata (0.21 median)
REAL_DENSITY = (0.08, 0.55)


def _density(hu, spacing) -> float:
    lm = find_lung_mask(hu, spacing)
    inner = lm.border_distance_mm > 5.0
    iy = np.minimum(np.arange(hu.shape[1]) // lm.step, inner.shape[1] - 1)
    ix = np.minimum(np.arange(hu.shape[2]) // lm.step, inner.shape[2] - 1)
    lung = inner[:, iy][:, :, ix]
    px = spacing[1] * spacing[2]
    dens = []
    for k in range(hu.shape[0]):
        area = lung[k].sum() * px / 100.0
        if area < 20:
            continue
        lab, n = ndimage.label(lung[k] & (hu[k] > -500))
        sizes = np.bincount(lab.ravel())[1:] * px
        dens.append(((sizes >= 1.0) & (sizes <= 80.0)).sum() / area)
    return float(np.median(dens))


def test_vessel_cross_section_density_lies_in_the_real_range():
    ph = make_phantom(1000, size=512, n_slices=100)  # ~3 mm slices
    d = _density(ph.hu, ph.spacing_mm)
    assert REAL_DENSITY[0] <= d <= REAL_DENSITY[1], d


def test_the_scanner_is_randomised_per_case():
    from napari_lungkd.phantom.anatomy import sample_anatomy

    scans = []
    for seed in range(40):
        rng_a, rng_s = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        scans.append(sample_scanner(rng_s, sample_anatomy(rng_a, True), 512, None, varied=True))
    noise = [s.noise_hu for s in scans]
    psf = [s.psf_sigma_mm for s in scans]
    assert min(noise) < 14 and max(noise) > 35 and all(8 <= v <= 60 for v in noise)
    assert min(psf) < 0.4 and max(psf) > 0.8
    assert len({s.kernel for s in scans}) >= 5 and len({s.spacing_mm[0] for s in scans}) >= 5
    assert max(abs(s.hu_offset) for s in scans) > 5
    sharp = [s.noise_cutoff for s in scans if s.psf_sigma_mm < 0.45]
    soft = [s.noise_cutoff for s in scans if s.psf_sigma_mm > 0.7]
    assert min(sharp) > max(soft)  # sharper kernels have finer noise


def test_the_classic_phantom_keeps_its_narrow_scanner():
    # make_phantom(varied=False), the default: the sample and the bundled weights' world
    from napari_lungkd.phantom.anatomy import sample_anatomy

    for seed in range(20):
        rng_a, rng_s = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        s = sample_scanner(rng_s, sample_anatomy(rng_a), 512, None)
        assert 14 <= s.noise_hu <= 30 and 0.35 <= s.psf_sigma_mm <= 0.6 and s.hu_offset == 0.0
