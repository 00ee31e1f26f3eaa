"""Shared test fixtures: where the real data lives and where test artefacts (screenshots) go."""

from __future__ import annotations

import os
from pathlib import Path

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
