"""The bundled sample case: regenerated deterministically on first use and cached.

No image data lives in git: the sample is ``make_phantom(SAMPLE_SEED, size=512, n_slices=120,
kinds=SAMPLE_KINDS)`` written by ``write_case`` (4 simulated readers) into
``platformdirs.user_cache_dir("napari-lungkd")/sample-v<SAMPLE_VERSION>-<package version>-seed<SAMPLE_SEED>/``
(``$LUNGKD_CACHE_DIR`` overrides the folder).
The generator is byte-deterministic, so every user gets the same files; ``sample_data/README.md``
records the SHA-256 of the CT volume so that a change in the generator is noticed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

SAMPLE_SEED = 115
SAMPLE_SIZE = 512
SAMPLE_SLICES = 120
SAMPLE_KINDS = ("solid", "part-solid", "ground-glass")
SAMPLE_VERSION = 1
# SHA-256 of the sample's HU volume and truth labels (see hu_sha256); a test checks them, so any
# change to the generator that alters the sample is noticed (then bump SAMPLE_VERSION and update
# these and sample_data/README.md).
SAMPLE_HU_SHA256 = "54adbecadb85f33f6f09fc3b6ddd0f272c4735be8be50117f07c8e99cc40f55a"
SAMPLE_LABELS_SHA256 = "fb6886226403748e19c766a82899591211457b7cf78ed3c5b1c484834f6acd39"
_DONE = "complete.txt"


def sample_cache_root() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("LUNGKD_CACHE_DIR") or user_cache_dir("napari-lungkd"))


def make_sample_phantom(size: int = SAMPLE_SIZE, n_slices: int = SAMPLE_SLICES):
    from napari_lungkd.phantom.build import make_phantom

    return make_phantom(SAMPLE_SEED, size=size, n_slices=n_slices, kinds=SAMPLE_KINDS)


def hu_sha256(phantom) -> str:
    """SHA-256 of the phantom's HU bytes (int16, little-endian, (z, y, x) C order)."""
    return hashlib.sha256(phantom.hu.astype("<i2").tobytes()).hexdigest()


def labels_sha256(phantom) -> str:
    return hashlib.sha256(phantom.labels.astype(np.uint8).tobytes()).hexdigest()


def ensure_sample_case(root=None) -> dict:
    """Paths of the sample case (series folder, XML, truth, JSON), writing it first if needed."""
    from napari_lungkd.phantom.case import write_case

    root = Path(root) if root is not None else sample_cache_root()
    from napari_lungkd import __version__

    final = root / f"sample-v{SAMPLE_VERSION}-{__version__}-seed{SAMPLE_SEED}"
    patient = f"LKD-PHANTOM-{SAMPLE_SEED:04d}"
    if not (final / _DONE).is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".sample-", dir=root))
        try:
            phantom = make_sample_phantom()
            write_case(phantom, tmp, n_readers=4)
            (tmp / _DONE).write_text(f"hu_sha256 {hu_sha256(phantom)}\n")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    case = final / patient
    return {
        "case_dir": case,
        "series_dir": case / "series",
        "xml": case / "series" / "reads.xml",
        "truth_mask": case / "truth_labels.nii.gz",
        "nodules_json": case / "nodules.json",
    }
