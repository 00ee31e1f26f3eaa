"""Shared test fixtures: where the real data lives and where test artefacts (screenshots) go."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("LUNGKD_REALDATA", REPO.parent / "shared" / "realdata")).resolve()
ARTIFACTS = Path(os.environ.get("LUNGKD_ARTIFACTS", REPO / "test-artifacts")).resolve()


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
