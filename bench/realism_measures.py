"""The measures of ``bench/phantom_realism.py``: tissue HU, vessel cross-sections and elongation,
noise, per CT (no truth needed), and the real chests to compare with. See that script's docstring."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy import ndimage

TISSUES = {
    "lung parenchyma": (-1000, -400, 10),
    "soft tissue": (-200, 200, 8),
    "bone": (200, 1500, 25),
}


def body_mask(hu: np.ndarray) -> np.ndarray:
    out = np.zeros(hu.shape, bool)
    for k in range(hu.shape[0]):
        lab, n = ndimage.label(hu[k] > -500)
        if n == 0:
            continue
        sizes = ndimage.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))
        out[k] = ndimage.binary_fill_holes(lab == 1 + int(np.argmax(sizes)))
    return out


def tissue_values(hu: np.ndarray, stride: int = 2) -> dict:
    """HU samples per tissue class, from every ``stride``-th pixel (rows and columns)."""
    hu = hu[:, ::stride, ::stride]
    body = body_mask(hu)
    v = hu[body].astype(np.float32)
    out = {}
    for name, (lo, hi, _) in TISSUES.items():
        out[name] = v[(v >= lo) & (v < hi)]
    out["_body_n"] = v.size
    return out


def histogram(values: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    lo, hi, step = TISSUES[name]
    edges = np.arange(lo, hi + step, step)
    h, _ = np.histogram(values, bins=edges)
    return h / max(h.sum(), 1), edges


# (name, path under realdata, ignore mask or None, may train) - what the README of more_chests says
REAL = [
    ("LIDC-IDRI-0001", "LIDC-IDRI-0001", None, True),
    ("LUNG1-001", "more_chests/LUNG1-001/image", "more_chests/LUNG1-001/mask_GTV-1.nrrd", False),
    ("C3N-00247", "more_chests/C3N-00247", None, True),
    (
        "pyradiomics_lung2",
        "more_chests/pyradiomics_lung2/lung2_image.nrrd",
        "more_chests/pyradiomics_lung2/lung2_label.nrrd",
        True,
    ),
    ("Lung_Dx-A0001", "more_chests/Lung_Dx-A0001/series_5mm", None, True),
    ("IBSI_ct_phantom", "more_chests/IBSI_ct_phantom/nifti", None, False),
    ("elastix_baseline", "more_chests/elastix_lung_crops/3DCT_lung_baseline.mha", None, True),
]


def load_real(realdata: Path) -> list:
    from napari_lungkd.io.load import load_ct
    from napari_lungkd.io.masks import read_mask

    out = []
    for name, rel, mask_rel, train in REAL:
        path = realdata / rel
        if not path.exists():
            continue
        if path.is_dir() and name == "IBSI_ct_phantom":
            hits = sorted(p for p in path.rglob("*.nii*") if "mask" not in p.name.lower())
            if not hits:
                continue
            path = hits[0]
        try:
            ct = load_ct(path)
            mask = read_mask(realdata / mask_rel, ct) if mask_rel else None
        except Exception as exc:  # a host that does not load is reported, not fatal
            print(f"(skipped {name}: {exc})")
            continue
        out.append((name, ct, mask, train))
    return out


def lung_inner(hu, spacing, inset_mm: float = 5.0):
    """Full-resolution lung mask (filled) eroded ``inset_mm`` from the pleura; None if no lungs."""
    from napari_lungkd.inference.lung_mask import find_lung_mask

    lm = find_lung_mask(hu, spacing)
    if not lm.found:
        return None
    inner = lm.border_distance_mm > inset_mm
    ny, nx = hu.shape[1:]
    iy = np.minimum(np.arange(ny) // lm.step, inner.shape[1] - 1)
    ix = np.minimum(np.arange(nx) // lm.step, inner.shape[2] - 1)
    return inner[:, iy][:, :, ix]


def vessel_measures(hu, spacing) -> dict | None:
    """Cross-sections per cm² of lung per slice (median) and 3-D elongation (median)."""
    lung = lung_inner(hu, spacing)
    if lung is None or lung.sum() == 0:
        return None
    sz, sy, sx = spacing
    px_mm2 = sy * sx
    vessel = lung & (hu > -500)
    dens = []
    for k in range(hu.shape[0]):
        area_cm2 = lung[k].sum() * px_mm2 / 100.0
        if area_cm2 < 20:
            continue
        lab, n = ndimage.label(vessel[k])
        if n == 0:
            dens.append(0.0)
            continue
        areas = np.bincount(lab.ravel())[1:] * px_mm2
        dens.append(float(((areas >= 1.0) & (areas <= 80.0)).sum()) / area_cm2)
    lab, n = ndimage.label(vessel)
    elong = []
    if n:
        sizes = np.bincount(lab.ravel())
        keep = np.flatnonzero(sizes * sz * sy * sx >= 20.0)
        keep = keep[keep > 0]
        objs = ndimage.find_objects(lab)
        for i in keep[:4000]:
            sl = objs[i - 1]
            pts = np.argwhere(lab[sl] == i) * np.asarray(spacing)
            if len(pts) < 4:
                continue
            ev = np.sort(np.linalg.eigvalsh(np.cov(pts.T)))[::-1]
            elong.append(float(np.sqrt(ev[0] / max(ev[1], 1e-6))))
    return {
        "density": float(np.median(dens)) if dens else float("nan"),
        "elongation": float(np.median(elong)) if elong else float("nan"),
        "n_pieces": len(elong),
    }


def noise_measures(hu, spacing, patch: int = 32) -> dict | None:
    """Noise std and the NPS's mean frequency in quiet soft-tissue patches (one per slice)."""
    pix = float(spacing[1])
    nz = hu.shape[0]
    found = []
    for k in np.linspace(nz * 0.2, nz * 0.8, 24).astype(int):
        s = hu[k].astype(np.float32)
        m = ndimage.uniform_filter(s, patch)
        v = ndimage.uniform_filter(s * s, patch) - m * m
        ok = (m > -100) & (m < 150)
        h = patch // 2
        ok[:h], ok[-h:], ok[:, :h], ok[:, -h:] = False, False, False, False
        if not ok.any():
            continue
        j = np.flatnonzero(ok.ravel())[np.argmin(v.ravel()[ok.ravel()])]
        y, x = divmod(int(j), s.shape[1])
        found.append((float(v[y, x]), s[y - h : y + h, x - h : x + h]))
    if not found:
        return None
    found.sort(key=lambda t: t[0])
    nps = np.zeros((patch, patch))
    stds = []
    yy, xx = np.mgrid[:patch, :patch]
    for _, p in found[:12]:
        a = np.c_[np.ones(patch * patch), yy.ravel(), xx.ravel()]
        coef, *_ = np.linalg.lstsq(a, p.ravel(), rcond=None)
        r = p - (a @ coef).reshape(p.shape)
        stds.append(float(r.std()))
        nps += np.abs(np.fft.fft2(r)) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(patch, pix), np.fft.fftfreq(patch, pix)))
    bins = np.linspace(0, 0.5 / pix, 12)
    which = np.digitize(f.ravel(), bins) - 1
    radial = np.bincount(which, nps.ravel(), len(bins))[: len(bins) - 1]
    radial /= np.maximum(np.bincount(which, minlength=len(bins))[: len(bins) - 1], 1)
    return {
        "std": float(np.median(stds)),
        "f_mean": float((f * nps).sum() / nps.sum()),
        "radial": (0.5 * (bins[1:] + bins[:-1]), radial / radial.sum()),
    }


def measure(name, group, hu, spacing) -> dict:
    t0 = time.perf_counter()
    out = {"name": name, "group": group, "tissues": tissue_values(hu)}
    out["vessels"] = vessel_measures(hu, spacing)
    out["noise"] = noise_measures(hu, spacing)
    out["seconds"] = time.perf_counter() - t0
    return out


def overlap(a, b, name) -> float:
    return float(np.minimum(histogram(a, name)[0], histogram(b, name)[0]).sum())


def pooled(rows, group, tissue):
    parts = [r["tissues"][tissue] for r in rows if r["group"] == group]
    return np.concatenate(parts) if parts else np.zeros(0)
