"""A tiny false-positive classifier (blob-like candidates are nodules, tube-like ones vessels) and
the tiny CT with a vessel it is meant for: shared by the inference, widget and CLI tests."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tiny_models import SPACING_MM, synthetic_ct


def write_tiny_classifier(path, operating_points=(), max_iter: int = 30):
    """A boosted-tree classifier file at ``path`` that scores blobness above tubeness as a nodule
    (needs scikit-learn: call ``pytest.importorskip("sklearn.ensemble")`` first)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from napari_lungkd.inference.candidate_features import FEATURE_NAMES
    from napari_lungkd.models.tree_ensemble import from_sklearn, save_tree_ensemble

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(400, len(FEATURE_NAMES)))
    y = (x[:, FEATURE_NAMES.index("blobness")] > x[:, FEATURE_NAMES.index("tubeness")]).astype(int)
    clf = HistGradientBoostingClassifier(max_iter=max_iter, random_state=0).fit(x, y)
    meta = {"default_threshold": 0.5, "operating_points": [dict(p) for p in operating_points]}
    return save_tree_ensemble(path, from_sklearn(clf, FEATURE_NAMES, meta))


def ct_with_a_vessel():
    """The tiny CT's bright ball (a nodule) plus a bright tube running across the other lung."""
    ct = synthetic_ct(n_slices=12)
    hu = ct.hu.copy()
    n, size = hu.shape[0], hu.shape[1]
    zz, yy, xx = np.mgrid[:n, :size, :size]
    tube = ((zz - n // 2) * SPACING_MM[0]) ** 2 + ((xx - 0.31 * size) * 0.8) ** 2 < 1.6**2
    tube &= np.abs(yy - size / 2) < 0.2 * size
    hu[tube] = 120
    return replace(ct, hu=hu)


def write_tiny_cnn_classifier(path, steps: int = 40):
    """A 3-D CNN classifier file (the small 3-D student) at ``path``, trained for a few steps on
    patches of :func:`ct_with_a_vessel` around its ball (nodule) and along its tube (vessel), with
    the centres jittered by up to 1.5 mm (needs torch)."""
    from napari_lungkd.inference.candidate_patches import candidate_patches
    from napari_lungkd.models.cnn3d import save_cnn3d
    from napari_lungkd.progress import run_to_end
    from src_training.fp_cnn3d import PatchSet, Schedule, iter_train

    ct = ct_with_a_vessel()
    n, size = ct.hu.shape[0], ct.hu.shape[1]
    rng = np.random.default_rng(0)
    k = 24
    jitter = rng.uniform(-1.5, 1.5, (2 * k, 3)) / np.asarray(SPACING_MM)
    ball = np.tile([n // 2, size / 2, 0.69 * size], (k, 1))
    tube = np.stack(
        [
            np.full(k, n // 2),
            size / 2 + rng.uniform(-0.15, 0.15, k) * size,
            np.full(k, 0.31 * size),
        ],
        axis=1,
    )
    centres = np.concatenate([ball, tube]) + jitter
    data = PatchSet(
        candidate_patches(ct.hu, ct.spacing_mm, centres), np.r_[np.ones(k, int), np.zeros(k, int)]
    )
    model = run_to_end(iter_train("student", data, 0, Schedule(steps=steps, batch=16, lr=3e-3)))
    meta = {
        "role": "baseline",
        "default_threshold": 0.5,
        "operating_points": [{"fp_per_scan": 1.0, "sensitivity": 0.9, "threshold": 0.5}],
    }
    return save_cnn3d(path, model, "student", meta)
