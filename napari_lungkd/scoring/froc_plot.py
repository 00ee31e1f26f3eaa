"""The FROC plot: false positives per scan (log 2, 1/8 to 8) against sensitivity, as LUNA16 draws it.

matplotlib is imported inside :func:`plot_froc` (the optional ``bench`` extra).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from napari_lungkd.files import atomic_path
from napari_lungkd.scoring.froc import LUNA16_FP_RATES, FrocResult


def plot_froc(results, path, title: str = "FROC") -> Path:
    """Draw one or more FROC curves (``{label: FrocResult}`` or one result) to a PNG file.

    The x axis is false positives per scan on a log-2 scale from 1/8 to 8, as LUNA16 draws it;
    a bootstrap band is shaded where the result has one. The file is written atomically. Needs
    matplotlib (the ``bench`` extra).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(results, FrocResult):
        results = {"": results}
    if not isinstance(results, Mapping) or not results:
        raise ValueError("plot_froc needs a FrocResult or a non-empty {label: FrocResult}")
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    try:
        for label, res in results.items():
            # the curve as the table reads it (linear in FP/scan between operating points, flat
            # after the last), sampled densely: straight lines between the corners would bend it
            # on the log axis; each corner also just before itself, so that steps stay steps
            c = res.curve.corners().fp_per_scan
            c = c[c > 0.125 / 2]
            x = np.r_[
                np.geomspace(0.125 / 2, max(8.0, float(c.max(initial=0))), 400), c, c * 0.9999
            ]
            x = np.unique(x)
            y = res.curve.sensitivity_at(x)
            cpm = "-" if res.cpm is None else f"{res.cpm:.3f}"
            name = f"{label} (CPM {cpm})" if label else f"CPM {cpm}"
            (line,) = ax.plot(x, y, lw=2, label=name)
            b = res.bootstrap
            if b is not None:
                ax.fill_between(
                    b.band_rates, b.band_lower, b.band_upper, color=line.get_color(), alpha=0.15
                )
        ax.set_xscale("log", base=2)
        ticks = list(LUNA16_FP_RATES)
        ax.set_xticks(ticks)
        ax.set_xticklabels(["1/8", "1/4", "1/2", "1", "2", "4", "8"])
        ax.set_xlim(0.125, 8.0)
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel("False positives per scan")
        ax.set_ylabel("Sensitivity")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
