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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from realism_measures import (  # noqa: E402  (bench/ is on sys.path when run as a script)
    histogram,
    load_real,
    measure,
    overlap,
    pooled,
)


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
