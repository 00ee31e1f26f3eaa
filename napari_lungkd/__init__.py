"""napari-lungkd: lung-nodule segmentation in chest CT with a knowledge-distilled U-Net.

The public names are imported lazily so that ``import napari_lungkd`` stays light: it never
imports torch, napari or Qt (torch is loaded when a model is first needed).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "CtVolume": "napari_lungkd.ct",
    "load_ct": "napari_lungkd.io",
    "read_lidc_xml": "napari_lungkd.lidc",
    "segment": "napari_lungkd.inference",
    "Segmenter": "napari_lungkd.inference",
    "RunSettings": "napari_lungkd.inference",
    "Segmentation": "napari_lungkd.inference",
    "make_phantom": "napari_lungkd.phantom",
    "Progress": "napari_lungkd.progress",
    "run_to_end": "napari_lungkd.progress",
    "LungKDError": "napari_lungkd.errors",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'napari_lungkd' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
