"""A 3-D CNN false-positive classifier as the pipeline's second stage.

    clf = load_patch_classifier("student_fp.safetensors")   # a checked cnn3d file
    scores = clf.score(candidates, hu, spacing_mm)          # nodule probability per candidate

The boosted trees score a candidate's measured features; the 3-D CNN looks at the CT itself: a
32 mm isotropic patch around each candidate's centre
(:func:`~napari_lungkd.inference.candidate_patches.candidate_patches`). Both answer the same
questions for :mod:`~napari_lungkd.inference.fp_reduction`: a score per candidate, the
operating points measured on held-out scans and the default one (``default_threshold``,
``operating_points`` in the file's header, written by :mod:`src_training.fp_cnn3d`).
Runs on the CPU: ~1.5 ms a candidate for the 3-D student, ~20 ms for the 3-D teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_lungkd.models.tree_ensemble import OperatingPoints


@dataclass(frozen=True, eq=False)
class PatchClassifier(OperatingPoints):
    """A loaded 3-D CNN classifier (eval mode) and its checked header."""

    model: object  # napari_lungkd.models.cnn3d.PatchNet3d
    metadata: dict

    def score_patches(self, patches: np.ndarray, batch: int = 64) -> np.ndarray:
        """Nodule probability of each ``(32, 32, 32)`` HU patch."""
        from napari_lungkd.models.cnn3d import predict_logits

        logits = predict_logits(self.model, patches, batch).astype(np.float64)
        return 1.0 / (1.0 + np.exp(-logits))

    def score(self, candidates, hu, spacing_mm, batch: int = 64) -> np.ndarray:
        """Nodule probability of every candidate of ``candidates`` (same order as its items)."""
        from napari_lungkd.inference.candidate_patches import candidate_patches

        if not len(candidates):
            return np.zeros(0)
        centres = np.array([c.centroid_zyx for c in candidates.items], dtype=np.float64)
        return self.score_patches(candidate_patches(hu, spacing_mm, centres), batch)


def load_patch_classifier(path) -> PatchClassifier:
    """The 3-D CNN classifier in ``path``, after every check of
    :func:`~napari_lungkd.models.cnn3d.load_cnn3d` (a changed file is refused)."""
    from napari_lungkd.models.cnn3d import load_cnn3d

    model, header = load_cnn3d(path)
    return PatchClassifier(model, header)
