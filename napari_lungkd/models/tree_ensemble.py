"""The false-positive classifier's file and predictor: boosted trees as plain arrays, no pickle.

A gradient-boosted tree ensemble (trained with scikit-learn's HistGradientBoostingClassifier in
``src_training``) is stored as flat arrays in a safetensors file, like the U-Net weights, with a
JSON header under ``"lungkd"``::

    {"format": 1, "kind": "tree_ensemble", "feature_names": [...], "baseline": <raw score>,
     "operating_points": [{"threshold", "fp_per_scan", "sensitivity"}...], "default_threshold": t,
     "training": {...}, "data_split": {...}, "metrics": {...}, "package_version": ...,
     "tensors_sha256": "<hash of every array's name, dtype, shape and bytes>",
     "header_sha256": "<hash of the header's canonical JSON without this field>"}

A flipped byte in any array is found (the tensors hash), a changed operating point or any other
header value too (the header hash), a file of another kind or with other feature
names is refused, and reading it runs no code. Prediction walks every tree at once in numpy
(scikit-learn is needed to train, not to score): the nodule probability of a feature row is
``sigmoid(baseline + sum of the leaf values it reaches)``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_lungkd import __version__
from napari_lungkd.errors import WeightsError
from napari_lungkd.files import atomic_path

METADATA_KEY = "lungkd"
KIND = "tree_ensemble"
FORMAT_VERSION = 1
ARRAYS = ("feature", "threshold", "left", "right", "is_leaf", "value", "missing_left", "roots")


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """A hash of every array (name, dtype, shape, bytes), independent of the file layout."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{tuple(a.shape)}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def header_sha256(header: dict) -> str:
    """A hash of the header's canonical JSON (sorted keys), leaving out ``header_sha256`` itself."""
    body = {k: v for k, v in header.items() if k != "header_sha256"}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


class OperatingPoints:
    """What every classifier file states in its header (``metadata``): the held-out operating
    points and the default one."""

    metadata: dict

    @property
    def default_threshold(self) -> float:
        return float(self.metadata.get("default_threshold", 0.5))

    @property
    def operating_points(self) -> list[dict]:
        return list(self.metadata.get("operating_points", []))


@dataclass(frozen=True, eq=False)
class TreeEnsemble(OperatingPoints):
    """Boosted binary-classification trees as flat node arrays (all trees share one index space)."""

    feature: np.ndarray  # int32 (n_nodes,): feature index tested at each split node
    threshold: np.ndarray  # float64: go left when x[feature] <= threshold
    left: np.ndarray  # int32: child node indices (global)
    right: np.ndarray
    is_leaf: np.ndarray  # uint8
    value: np.ndarray  # float64: leaf value (raw score)
    missing_left: np.ndarray  # uint8: where a NaN goes
    roots: np.ndarray  # int32 (n_trees,): each tree's root node
    baseline: float
    feature_names: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAYS}

    @property
    def n_trees(self) -> int:
        return int(len(self.roots))

    def raw_score(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(f"expected (n, {len(self.feature_names)}) features, got {x.shape}")
        n = len(x)
        if n == 0:
            return np.zeros(0)
        node = np.broadcast_to(self.roots, (n, self.n_trees)).copy()
        rows = np.arange(n)[:, None]
        for _ in range(64):  # deeper than any tree we train; stops when every row sits on a leaf
            leaf = self.is_leaf[node].astype(bool)
            if leaf.all():
                break
            f = self.feature[node]
            v = x[rows, np.maximum(f, 0)]
            go_left = np.where(
                np.isnan(v), self.missing_left[node].astype(bool), v <= self.threshold[node]
            )
            nxt = np.where(go_left, self.left[node], self.right[node])
            node = np.where(leaf, node, nxt)
        return self.baseline + self.value[node].sum(axis=1)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Nodule probability per row of ``x`` ``(n, n_features)``."""
        return 1.0 / (1.0 + np.exp(-self.raw_score(x)))


def from_sklearn(clf, feature_names, metadata: dict | None = None) -> TreeEnsemble:
    """Flatten a fitted binary ``HistGradientBoostingClassifier`` into a :class:`TreeEnsemble`."""
    if getattr(clf, "n_trees_per_iteration_", 1) != 1:
        raise ValueError("only binary classifiers (one tree per iteration) are supported")
    parts = {
        k: [] for k in ("feature", "threshold", "left", "right", "is_leaf", "value", "missing_left")
    }
    roots = []
    offset = 0
    for (predictor,) in clf._predictors:
        nodes = predictor.nodes
        if np.any(nodes["is_categorical"]):
            raise ValueError("categorical splits are not supported")
        roots.append(offset)
        parts["feature"].append(nodes["feature_idx"].astype(np.int32))
        parts["threshold"].append(nodes["num_threshold"].astype(np.float64))
        parts["left"].append(nodes["left"].astype(np.int32) + offset)
        parts["right"].append(nodes["right"].astype(np.int32) + offset)
        parts["is_leaf"].append(nodes["is_leaf"].astype(np.uint8))
        parts["value"].append(np.where(nodes["is_leaf"], nodes["value"], 0.0).astype(np.float64))
        parts["missing_left"].append(nodes["missing_go_to_left"].astype(np.uint8))
        offset += len(nodes)
    baseline = float(np.ravel(clf._baseline_prediction)[0])
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return TreeEnsemble(
        **arrays,
        roots=np.asarray(roots, dtype=np.int32),
        baseline=baseline,
        feature_names=tuple(feature_names),
        metadata=dict(metadata or {}),
    )


def save_tree_ensemble(path, model: TreeEnsemble, overwrite: bool = True) -> Path:
    """Write ``model`` as a safetensors file with its JSON header, atomically."""
    from safetensors.numpy import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"Classifier file {path} must end in .safetensors.")
    arrays = {k: np.ascontiguousarray(v) for k, v in model.arrays().items()}
    header = dict(model.metadata)
    header.update(
        {
            "format": FORMAT_VERSION,
            "kind": KIND,
            "feature_names": list(model.feature_names),
            "baseline": model.baseline,
            "package_version": header.get("package_version", __version__),
            "tensors_sha256": arrays_sha256(arrays),
        }
    )
    header["header_sha256"] = header_sha256(header)
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file(arrays, str(tmp), metadata={METADATA_KEY: json.dumps(header)})
    return path


def read_checked_file(path, kind: str, what: str, required=None) -> tuple[dict, dict]:
    """``(header, arrays)`` of a classifier safetensors file of ``kind`` (its header's ``kind``),
    both hashes checked; :class:`WeightsError` with one sentence naming ``what`` it should be."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Classifier file {path} does not exist.")
    try:
        with safe_open(str(path), framework="numpy") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file ({exc}).") from None
    try:
        header = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("kind") != kind:
        raise WeightsError(f"{path} is not a napari-lungkd {what} file.")
    if required is not None and set(arrays) != set(required):
        raise WeightsError(
            f"{path} lacks the arrays of a tree ensemble ({sorted(set(required) - set(arrays))})."
        )
    if header.get("header_sha256") != header_sha256(header):
        raise WeightsError(f"{path} was changed: its header does not match its recorded hash.")
    if arrays_sha256(arrays) != header.get("tensors_sha256"):
        raise WeightsError(
            f"{path} is damaged or was changed: its arrays do not match their recorded hash."
        )
    return header, arrays


def load_tree_ensemble(path, expected_features=None) -> TreeEnsemble:
    """Read and check a classifier file; :class:`WeightsError` with one sentence when it is not one."""
    path = Path(path)
    header, arrays = read_checked_file(path, KIND, "false-positive classifier", ARRAYS)
    names = tuple(header.get("feature_names") or ())
    if expected_features is not None and names != tuple(expected_features):
        raise WeightsError(
            f"{path} was trained on other candidate features than this version computes; retrain or update it."
        )
    meta = {k: v for k, v in header.items() if k not in ("feature_names", "baseline")}
    meta["file_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    meta["path"] = str(path)
    return TreeEnsemble(
        **{k: arrays[k] for k in ARRAYS},
        baseline=float(header["baseline"]),
        feature_names=names,
        metadata=meta,
    )
