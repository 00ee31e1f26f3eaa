"""How real does the training data look? The phantom, nodules inserted into real CT, and real chests.

Compares ``make_phantom`` cases, ``insert_nodules`` cases (one per real host that may be used for
training) and every real chest CT in ``$LUNGKD_REALDATA`` (default ``../shared/realdata``:
LIDC-IDRI-0001 and ``more_chests/``; skipped with a message where absent) on what a detector
sees, cut the same way from all three without any truth:

* HU histograms per tissue (body: per slice the largest region above -500 HU, holes filled; lung
  parenchyma -1000..-400, soft tissue -200..200, bone > 200) and their overlap with the real
  chests' pooled histogram (sum of the minimum of the normalised histograms);
* vessels: inside the lungs (``find_lung_mask``, eroded 5 mm from the pleura), voxels above
  -500 HU; per slice the number of 2-D connected cross-sections (1-80 mm²) per cm² of lung, and
  in 3-D the elongation of each connected vessel piece of 20 mm³ or more (square root of the ratio
  of the two largest principal variances, in mm) - dots give ~1, branching lines much more;
* noise: in up to 12 quiet 32 x 32 soft-tissue patches (mean -100..150 HU, lowest standard
  deviation, one per slice) the noise std and the noise power spectrum's mean frequency;
* nodule sizes: the phantom's and the inserted nodules' diameters, the real marked lesions.

Prints Markdown tables and writes one figure (slices of phantom, inserted and real at the same
lung window; histograms; vessel measures; NPS; sizes).

    .venv/bin/python bench/phantom_realism.py [--cases 4] [--out docs/phantom_realism.png]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

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


def main(argv=None) -> int:
    from napari_lungkd.phantom import insert_nodules, make_phantom

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--out", default=str(REPO / "docs" / "phantom_realism.png"))
    ap.add_argument(
        "--classic",
        action="store_true",
        help="the classic phantom (the sample's) instead of make_phantom(varied=True)",
    )
    args = ap.parse_args(argv)
    realdata = Path(os.environ.get("LUNGKD_REALDATA", REPO.parent / "shared" / "realdata"))
    reals = load_real(realdata) if realdata.is_dir() else []
    if not reals:
        print(f"real data not found at {realdata} (set LUNGKD_REALDATA): phantom side only")
    rows, slices, sizes = [], {}, {"phantom": [], "inserted": [], "real": []}
    seconds = []
    for i in range(args.cases):
        t0 = time.perf_counter()
        ph = make_phantom(args.seed + i, varied=not args.classic)
        seconds.append(time.perf_counter() - t0)
        rows.append(measure(f"phantom {args.seed + i}", "phantom", ph.hu, ph.spacing_mm))
        sizes["phantom"] += [n.diameter_mm for n in ph.nodules]
        if "phantom" not in slices:
            k = int(ph.shape[0] * 0.55)
            if ph.nodules:
                k = int(round(max(ph.nodules, key=lambda n: n.diameter_mm).centre_zyx[0]))
            slices["phantom"] = (f"phantom seed {ph.seed}", ph.hu[k])
    for j, (name, ct, mask, train) in enumerate(reals):
        rows.append(measure(name, "real", ct.hu, ct.spacing_mm))
        if name == "LIDC-IDRI-0001":
            slices["real"] = (f"real: {name}", ct.hu[int(ct.shape[0] * 0.6)])
        if not train:
            continue
        try:
            t0 = time.perf_counter()
            ins = insert_nodules(ct, 100 + j, n_nodules=6, ignore=mask)
            secs = time.perf_counter() - t0
        except Exception as exc:
            print(f"(no insertion into {name}: {exc})")
            continue
        rows.append(measure(f"{name} + nodules", "inserted", ins.ct.hu, ct.spacing_mm))
        rows[-1]["insert_seconds"] = secs
        sizes["inserted"] += [n.diameter_mm for n in ins.nodules]
        if "inserted" not in slices and ins.nodules:
            big = max(ins.nodules, key=lambda n: n.diameter_mm)
            slices["inserted"] = (f"inserted: {name}", ins.ct.hu[int(round(big.centre_zyx[0]))])
    report(rows, sizes, seconds)
    draw_figure(Path(args.out), rows, slices, sizes)
    print(f"\nfigure: {args.out} ({Path(args.out).stat().st_size // 1024} KB)")
    return 0


def _f(v, fmt="{:.2f}"):
    return "–" if v is None or not np.isfinite(v) else fmt.format(v)


def report(rows, sizes, seconds) -> None:
    print(f"make_phantom: {np.median(seconds):.2f} s median per case (512 x 512, this machine)")
    print(
        "\n| scan | group | lung overlap | soft-tissue overlap | vessel cross-sections / cm² / slice "
        "| 3-D elongation | noise std (HU) | NPS mean f (1/mm) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    real_lung, real_soft = (
        pooled(rows, "real", "lung parenchyma"),
        pooled(rows, "real", "soft tissue"),
    )
    for r in rows:
        v, n = r["vessels"] or {}, r["noise"] or {}
        lo = (
            overlap(r["tissues"]["lung parenchyma"], real_lung, "lung parenchyma")
            if real_lung.size
            else None
        )
        so = (
            overlap(r["tissues"]["soft tissue"], real_soft, "soft tissue")
            if real_soft.size
            else None
        )
        print(
            f"| {r['name']} | {r['group']} | {_f(lo)} | {_f(so)} | {_f(v.get('density'))} | "
            f"{_f(v.get('elongation'))} | {_f(n.get('std'), '{:.1f}')} | {_f(n.get('f_mean'), '{:.3f}')} |"
        )
    print(
        "\n| group | lung overlap (pooled) | soft overlap (pooled) | vessel density median | vs real | "
        "elongation median | vs real |"
    )
    print("|---|---|---|---|---|---|---|")
    med = {}
    for g in ("real", "phantom", "inserted"):
        rr = [r for r in rows if r["group"] == g and r["vessels"]]
        if rr:
            med[g] = (
                float(np.nanmedian([r["vessels"]["density"] for r in rr])),
                float(np.nanmedian([r["vessels"]["elongation"] for r in rr])),
            )
    for g in ("phantom", "inserted", "real"):
        if g not in med:
            continue
        lo = (
            overlap(pooled(rows, g, "lung parenchyma"), real_lung, "lung parenchyma")
            if real_lung.size
            else None
        )
        so = (
            overlap(pooled(rows, g, "soft tissue"), real_soft, "soft tissue")
            if real_soft.size
            else None
        )
        rd, re_ = med.get("real", (np.nan, np.nan))
        print(
            f"| {g} | {_f(lo)} | {_f(so)} | {med[g][0]:.3f} | {_f(100 * (med[g][0] / rd - 1), '{:+.0f} %')} | "
            f"{med[g][1]:.2f} | {_f(100 * (med[g][1] / re_ - 1), '{:+.0f} %')} |"
        )
    for g, d in sizes.items():
        d = np.asarray(d)
        if d.size:
            print(
                f"\n{g} nodules: {d.size}; diameter median {np.median(d):.1f} mm, "
                f"{np.mean((d >= 3) & (d <= 6)) * 100:.0f} % 3-6 mm, {np.mean(d < 3) * 100:.0f} % < 3 mm, "
                f"range {d.min():.1f}-{d.max():.1f} mm"
            )


def draw_figure(path: Path, rows, slices, sizes) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(16, 8), dpi=72)
    for ax, key in zip(axes[0, :3], ("phantom", "inserted", "real")):
        if key in slices:
            title, img = slices[key]
            ax.imshow(np.clip((img.astype(np.float32) + 1350.0) / 1500.0, 0, 1), cmap="gray")
            ax.set_title(title + " (W1500 L-600)", fontsize=9)
        ax.axis("off")
    colors = {"phantom": "C0", "inserted": "C2", "real": "C1"}
    ax = axes[0, 3]
    for r in rows:
        if r["vessels"]:
            ax.scatter(
                r["vessels"]["density"], r["vessels"]["elongation"], c=colors[r["group"]], s=25
            )
    for g, c in colors.items():
        ax.scatter([], [], c=c, label=g)
    ax.set_xlabel("vessel cross-sections / cm² lung / slice")
    ax.set_ylabel("3-D elongation (median)")
    ax.legend(fontsize=8)
    for ax, name in zip(axes[1, :2], ("lung parenchyma", "soft tissue")):
        for g, c in colors.items():
            v = pooled(rows, g, name)
            if v.size:
                h, edges = histogram(v, name)
                ax.step(edges[:-1], h, where="post", color=c, label=g)
        ax.set_title(f"{name} (HU)")
        ax.set_yticks([])
        ax.legend(fontsize=8)
    ax = axes[1, 2]
    for r in rows:
        if r["noise"]:
            f, p = r["noise"]["radial"]
            ax.plot(f, p, color=colors[r["group"]], alpha=0.7)
    ax.set_xlabel("frequency (1/mm)")
    ax.set_title("noise power spectrum (normalised)")
    ax = axes[1, 3]
    bins = np.arange(0, 32, 1.5)
    for g, c in colors.items():
        if sizes[g]:
            ax.hist(sizes[g], bins=bins, density=True, alpha=0.5, color=c, label=g)
    ax.set_xlabel("nodule diameter (mm)")
    ax.set_title("nodule sizes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    from napari_lungkd.files import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
