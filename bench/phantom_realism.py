"""How real does the synthetic chest CT look? HU histograms and nodule sizes, synthetic vs real.

Compares ``make_phantom`` cases with the real LIDC-IDRI-0001 series (``$LUNGKD_REALDATA``, default
``../shared/realdata``; skipped with a message where absent). The same tissue classes are cut from
both, without using the phantom's own truth, so the comparison is fair:

* body: per slice, the largest connected region above -500 HU, holes filled;
* lung parenchyma: body voxels from -1000 to -400 HU (vessels inside the lungs mostly excluded);
* soft tissue: body voxels from -200 to 200 HU (fat, muscle, organs, blood);
* bone: body voxels above 200 HU (contrast-filled vessels land here too, as on the real case).

Prints a Markdown table (median, interquartile range, share of the body, histogram overlap =
sum of the minimum of the two normalised histograms) and writes a PNG figure with the real and a
synthetic slice side by side, the three histograms and the nodule-size distribution.

    .venv/bin/python bench/phantom_realism.py [--cases 6] [--size 512] [--out docs/phantom_realism.png]
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


def load_real(realdata: Path):
    from napari_lungkd import load_ct

    hits = sorted(p.parent for p in (realdata / "LIDC-IDRI-0001").rglob("069.xml"))
    if not hits:
        return None, None
    ct = load_ct(hits[0])
    sizes = []
    try:
        from napari_lungkd.lidc import annotate

        sizes = [
            n.diameter_mm for n in annotate(hits[0] / "069.xml", ct=ct).nodules if n.diameter_mm
        ]
    except Exception as exc:  # the size panel is optional; the histograms are the point
        print(f"(real nodule sizes unavailable: {exc})")
    return ct, sizes


def stats_row(
    name: str, syn: np.ndarray, real: np.ndarray | None, syn_share: float, real_share: float | None
):
    def fmt(v):
        q1, q2, q3 = np.percentile(v, [25, 50, 75])
        return f"{q2:.0f} [{q1:.0f}, {q3:.0f}]"

    if real is None or real.size == 0:
        return f"| {name} | {fmt(syn)} | – | {100 * syn_share:.1f} % | – | – |"
    overlap = float(np.minimum(histogram(syn, name)[0], histogram(real, name)[0]).sum())
    return (
        f"| {name} | {fmt(syn)} | {fmt(real)} | {100 * syn_share:.1f} % | {100 * real_share:.1f} % | "
        f"{overlap:.2f} |"
    )


def main(argv=None) -> int:
    from napari_lungkd.phantom import make_phantom

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=6)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--out", default=str(REPO / "docs" / "phantom_realism.png"))
    args = ap.parse_args(argv)

    realdata = Path(os.environ.get("LUNGKD_REALDATA", REPO.parent / "shared" / "realdata"))
    real_ct, real_sizes = (None, None)
    if realdata.is_dir():
        real_ct, real_sizes = load_real(realdata)
    if real_ct is None:
        print(f"real data not found at {realdata} (set LUNGKD_REALDATA): synthetic side only")

    syn_vals = {k: [] for k in TISSUES}
    syn_body, syn_sizes, example, seconds = 0, [], None, []
    for i in range(args.cases):
        t0 = time.perf_counter()
        ph = make_phantom(args.seed + i, size=args.size, n_slices=120 if args.size >= 256 else 40)
        seconds.append(time.perf_counter() - t0)
        vals = tissue_values(ph.hu)
        for k in TISSUES:
            syn_vals[k].append(vals[k])
        syn_body += vals["_body_n"]
        syn_sizes += [n.diameter_mm for n in ph.nodules]
        if example is None:
            example = ph
    syn_vals = {k: np.concatenate(v) for k, v in syn_vals.items()}
    real_vals = tissue_values(real_ct.hu) if real_ct is not None else None

    print(
        f"synthetic: {args.cases} cases, {args.size}x{args.size}, seeds {args.seed}-{args.seed + args.cases - 1}; "
        f"make_phantom {np.median(seconds):.2f} s median per case on this machine"
    )
    print(
        "real: LIDC-IDRI-0001 (133 x 512 x 512, 2.5 mm)" if real_ct is not None else "real: absent"
    )
    print()
    print(
        "| tissue | synthetic median [IQR] HU | real median [IQR] HU | synthetic share of body | real share | histogram overlap |"
    )
    print("|---|---|---|---|---|---|")
    for k in TISSUES:
        rv = real_vals[k] if real_vals else None
        rs = (rv.size / real_vals["_body_n"]) if real_vals else None
        print(stats_row(k, syn_vals[k], rv, syn_vals[k].size / syn_body, rs))
    d = np.array(syn_sizes)
    print()
    print(
        f"synthetic nodules: {d.size} in {args.cases} cases; diameter median {np.median(d):.1f} mm, "
        f"{(d < 3).mean() * 100:.0f} % under 3 mm, range {d.min():.1f}-{d.max():.1f} mm"
        if d.size
        else "synthetic nodules: none"
    )
    if real_sizes:
        print(f"LIDC-IDRI-0001 consensus nodules: {', '.join(f'{s:.1f}' for s in real_sizes)} mm")
    draw_figure(Path(args.out), example, real_ct, syn_vals, real_vals, syn_sizes, real_sizes or [])
    print(f"figure: {args.out} ({Path(args.out).stat().st_size // 1024} KB)")
    return 0


def _slice_png(hu2d):
    return np.clip((hu2d.astype(np.float32) + 1350.0) / 1500.0, 0, 1)


def draw_figure(path: Path, example, real_ct, syn_vals, real_vals, syn_sizes, real_sizes) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 7.6), dpi=72)
    ax = axes[0, 0]
    if real_ct is not None:
        k = int(real_ct.shape[0] * 0.6)
        ax.imshow(_slice_png(real_ct.hu[k]), cmap="gray", vmin=0, vmax=1)
        ax.set_title("real: LIDC-IDRI-0001")
    ax.axis("off")
    ax = axes[0, 1]
    k = int(example.shape[0] * 0.6)
    if example.nodules:
        k = int(round(max(example.nodules, key=lambda n: n.diameter_mm).centre_zyx[0]))
    ax.imshow(_slice_png(example.hu[k]), cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"synthetic: seed {example.seed}")
    ax.axis("off")
    ax = axes[0, 2]
    bins = np.arange(0, 32, 2)
    ax.hist(syn_sizes, bins=bins, density=True, alpha=0.6, label="synthetic")
    for s in real_sizes:
        ax.axvline(s, color="C1", lw=2, label="LIDC-IDRI-0001")
    ax.set_xlabel("nodule diameter (mm)")
    ax.set_title("nodule sizes")
    ax.legend(fontsize=8)
    for ax, name in zip(axes[1], TISSUES):
        h, edges = histogram(syn_vals[name], name)
        ax.step(edges[:-1], h, where="post", label="synthetic")
        if real_vals is not None:
            hr, _ = histogram(real_vals[name], name)
            ax.step(edges[:-1], hr, where="post", label="real")
        ax.set_title(f"{name} (HU)")
        ax.set_yticks([])
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    from napari_lungkd.files import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
