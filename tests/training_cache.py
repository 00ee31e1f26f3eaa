"""A small training cache in src_training.prepare's format, written in milliseconds (no phantoms)."""

from __future__ import annotations

import numpy as np

from napari_lungkd.files import write_json


def write_cache(root, n_cases=4, size=48, n_slices=10, seed=0):
    """A cache in prepare's format: lung-like noise with one bright sphere per case."""
    rng = np.random.default_rng(seed)
    by_patient = {}
    for c in range(n_cases):
        hu = rng.normal(-850, 30, (n_slices, size, size)).astype(np.int16)
        zz, yy, xx = np.mgrid[:n_slices, :size, :size]
        cz, cy, cx = 5, int(rng.integers(12, size - 12)), int(rng.integers(12, size - 12))
        labels = (((zz - cz) * 2.5) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 < 25).astype(np.int16)
        hu[labels > 0] = 40
        case_id = f"P{c}_s"
        folder = root / case_id
        folder.mkdir(parents=True)
        np.save(folder / "hu.npy", hu)
        np.save(folder / "mask.npy", (labels > 0).astype(np.uint8))
        np.save(folder / "labels.npy", labels)
        per = labels.reshape(n_slices, -1).any(1)
        write_json(
            folder / "case.json",
            {
                "case_id": case_id,
                "patient_id": f"P{c}",
                "spacing_mm": [2.5, 1.0, 1.0],
                "positive_slices": np.flatnonzero(per).tolist(),
                "negative_slices": np.flatnonzero(~per).tolist(),
            },
        )
        by_patient[f"P{c}"] = [case_id]
    from src_training.prepare import make_split

    write_json(root / "split.json", make_split(by_patient, seed=0))
    return root
