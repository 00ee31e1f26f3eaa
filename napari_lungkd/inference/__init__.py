"""From a CtVolume to nodules: lung region and 2.5-D input, runners (PyTorch, ONNX Runtime), nodules."""

from napari_lungkd.inference.segmentation import Provenance, Segmentation, Timings
from napari_lungkd.inference.segmenter import Segmenter, segment
from napari_lungkd.inference.settings import RunSettings

__all__ = ["Provenance", "RunSettings", "Segmentation", "Segmenter", "Timings", "segment"]
