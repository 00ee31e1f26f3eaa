"""Shared test fixtures: where the real data lives and where test artefacts (screenshots) go."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("LUNGKD_REALDATA", REPO.parent / "shared" / "realdata")).resolve()
ARTIFACTS = Path(os.environ.get("LUNGKD_ARTIFACTS", REPO / "test-artifacts")).resolve()


def pytest_configure(config):
    # torchvision (needed by segmentation-models-pytorch) loads triton, which bundles its own LLVM;
    # loaded after a napari viewer has pulled in Mesa's LLVM under Xvfb, it kills the process. Load
    # it first, once, for the whole run (napari_lungkd/_napari/torch_guard.py guards the plugin).
    try:
        import torchvision  # noqa: F401
    except ImportError:  # the suite still runs the parts that need no torch
        pass


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of real public test files (../shared/realdata); skips the test where absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data not found at {REALDATA} (set LUNGKD_REALDATA)")
    return REALDATA


@pytest.fixture(scope="session")
def lidc0001(realdata) -> Path:
    """The series folder of LIDC-IDRI-0001 (DICOM slices and 069.xml)."""
    hits = sorted(p.parent for p in (realdata / "LIDC-IDRI-0001").rglob("069.xml"))
    if not hits:
        pytest.skip(f"LIDC-IDRI-0001 series not found under {realdata}")
    return hits[0]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """A folder for what a test run should leave behind for people to look at (screenshots)."""
    path = ARTIFACTS / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---- the dock widget's case (test_widget.py, test_widget_grid.py) ------------------------------
@pytest.fixture(scope="session")
def case(tmp_path_factory):
    """A small phantom (128 x 128 pixels, 32 slices) written as DICOM + LIDC XML, loaded with load_ct."""
    from napari_lungkd.io import load_ct
    from napari_lungkd.phantom import make_phantom, write_case

    out = tmp_path_factory.mktemp("case")
    phantom = make_phantom(seed=7, size=128, n_slices=32)
    paths = write_case(phantom, out, n_readers=4, seed=7)
    return load_ct(paths["series_dir"]), paths


@pytest.fixture(scope="session")
def student(tmp_path_factory, case):
    """(weights path, threshold): a seeded random-weight student, and a threshold at which its
    probability map on the case leaves at least one nodule-sized blob."""
    from napari_lungkd._napari.torch_guard import guard_triton

    guard_triton()  # a viewer of an earlier test may have loaded Mesa's LLVM (see torch_guard)
    import torch

    from napari_lungkd.inference.segmenter import segment
    from napari_lungkd.models.specs import build_model, get_spec
    from napari_lungkd.models.weights import save_weights

    torch.manual_seed(0)
    spec = get_spec("student")
    path = tmp_path_factory.mktemp("weights") / "student.safetensors"
    save_weights(
        path, build_model(spec).state_dict(), spec, metadata={"note": "random weights for tests"}
    )
    ct, _ = case
    seg = segment(ct, "student", device="cpu", weights=path)
    prob = seg.probability.astype(np.float32)
    inside = prob[prob > 0]
    for q in (0.999, 0.995, 0.99, 0.98, 0.95, 0.9):
        thr = float(np.clip(np.quantile(inside, q), 0.02, 0.98))
        if segment(
            ct, "student", device="cpu", weights=path, threshold=thr, prepared=seg.prepared
        ).nodules:
            return path, thr
    pytest.fail("the random student gives no blob at any threshold")


@pytest.fixture(scope="session")
def teacher(tmp_path_factory, case, student):
    """A seeded random-weight teacher whose output bias is shifted so that, at the student's
    threshold, it too marks only its top 0.3 % of lung voxels (random models otherwise mark
    everything or nothing, which makes an unreadable comparison screenshot)."""
    from napari_lungkd._napari.torch_guard import guard_triton

    guard_triton()
    import torch

    from napari_lungkd.inference.segmenter import iter_prepare
    from napari_lungkd.models.specs import build_model, get_spec
    from napari_lungkd.models.weights import save_weights
    from napari_lungkd.progress import run_to_end

    torch.manual_seed(1)
    spec = get_spec("teacher")
    model = build_model(spec)
    ct, _ = case
    prepared = run_to_end(iter_prepare(ct, spec))
    with torch.no_grad():  # float32 logits on the model's own input (float16 probabilities tie)
        logits = np.concatenate(
            [
                model(torch.from_numpy(c.inputs[i : i + 4])).numpy().ravel()
                for c in prepared.chunks
                for i in range(0, len(c.inputs), 4)
            ]
        )
        thr = student[1]
        shift = np.log(thr / (1 - thr)) - float(np.quantile(logits, 0.997))
        model.segmentation_head[0].bias += float(shift)
    path = tmp_path_factory.mktemp("weights") / "teacher.safetensors"
    save_weights(path, model.state_dict(), spec, metadata={"note": "random weights for tests"})
    return path


@pytest.fixture
def setup(make_napari_viewer, qtbot, case, student):
    """A viewer with the case's CT layer and the docked widget pointed at the test student."""
    from napari.layers import Layer

    from napari_lungkd._napari._qt.widget import LungNodulesWidget
    from napari_lungkd._napari.layers import ct_layer_data

    ct, _ = case
    viewer = make_napari_viewer()
    ct_layer = viewer.add_layer(Layer.create(*ct_layer_data(ct)))
    widget = LungNodulesWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Lung nodules (KD)", area="right")
    viewer.window._qt_window.resize(1500, 950)  # room for the canvas and the panels in screenshots
    widget.session.weights["student"] = student[0]
    widget.segment_panel.threshold.setValue(student[1])
    widget.segment_panel.device_combo.setCurrentText("cpu")
    return viewer, widget, ct_layer, ct
