"""The false-positive classifier file: numpy prediction equals scikit-learn's; tampering is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_lungkd.errors import WeightsError
from napari_lungkd.models.tree_ensemble import (
    from_sklearn,
    load_tree_ensemble,
    save_tree_ensemble,
)

NAMES = ("a", "b", "c", "d")


@pytest.fixture(scope="module")
def fitted():
    sk = pytest.importorskip("sklearn.ensemble")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4))
    y = ((x[:, 0] + 0.5 * x[:, 1] ** 2 - x[:, 2] * x[:, 3]) > 0.3).astype(int)
    clf = sk.HistGradientBoostingClassifier(max_iter=40, max_depth=5, random_state=0).fit(x, y)
    return clf, x


def test_numpy_prediction_equals_sklearn(fitted):
    clf, x = fitted
    model = from_sklearn(clf, NAMES)
    assert model.n_trees == 40
    np.testing.assert_allclose(model.predict_proba(x), clf.predict_proba(x)[:, 1], atol=1e-9)


def test_missing_values_go_where_sklearn_sends_them(fitted):
    clf, x = fitted
    x = x[:50].copy()
    x[::3, 1] = np.nan
    model = from_sklearn(clf, NAMES)
    np.testing.assert_allclose(model.predict_proba(x), clf.predict_proba(x)[:, 1], atol=1e-9)


def test_save_load_round_trip_keeps_predictions_and_metadata(fitted, tmp_path):
    clf, x = fitted
    model = from_sklearn(
        clf, NAMES, {"default_threshold": 0.7, "operating_points": [{"threshold": 0.7}]}
    )
    path = save_tree_ensemble(tmp_path / "fp.safetensors", model)
    back = load_tree_ensemble(path, expected_features=NAMES)
    np.testing.assert_array_equal(back.predict_proba(x), model.predict_proba(x))
    assert back.default_threshold == 0.7 and back.feature_names == NAMES
    assert back.operating_points == [{"threshold": 0.7}]


def test_a_changed_array_is_refused(fitted, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    clf, _ = fitted
    path = save_tree_ensemble(tmp_path / "fp.safetensors", from_sklearn(clf, NAMES))
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    arrays = load_file(str(path))
    arrays["value"] = arrays["value"].copy()
    arrays["value"][np.flatnonzero(arrays["value"])[0]] += 1.0  # one leaf moved: a tampered model
    save_file(arrays, str(path), metadata=meta)
    with pytest.raises(WeightsError, match="do not match their recorded hash"):
        load_tree_ensemble(path)


def test_other_files_are_refused_with_one_sentence(fitted, tmp_path):
    from safetensors.numpy import save_file

    clf, _ = fitted
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_tree_ensemble(junk)
    unet = tmp_path / "unet.safetensors"
    save_file(
        {"w": np.zeros(3, np.float32)}, str(unet), metadata={"lungkd": json.dumps({"format": 1})}
    )
    with pytest.raises(WeightsError, match="not a napari-lungkd false-positive classifier"):
        load_tree_ensemble(unet)
    with pytest.raises(WeightsError, match="does not exist"):
        load_tree_ensemble(tmp_path / "missing.safetensors")
    path = save_tree_ensemble(tmp_path / "fp.safetensors", from_sklearn(clf, NAMES))
    with pytest.raises(WeightsError, match="other candidate features"):
        load_tree_ensemble(path, expected_features=("a", "b", "c", "e"))


def test_a_changed_header_is_refused(fitted, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    clf, _ = fitted
    path = save_tree_ensemble(
        tmp_path / "fp.safetensors", from_sklearn(clf, NAMES, {"default_threshold": 0.3})
    )
    with safe_open(str(path), framework="numpy") as f:
        header = json.loads(f.metadata()["lungkd"])
    header["default_threshold"] = 0.999  # an operating point that would hide every nodule
    save_file(load_file(str(path)), str(path), metadata={"lungkd": json.dumps(header)})
    with pytest.raises(WeightsError, match="header does not match"):
        load_tree_ensemble(path)
