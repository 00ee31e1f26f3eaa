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
