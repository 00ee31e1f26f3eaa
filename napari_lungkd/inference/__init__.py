"""From a CtVolume to nodules: lung region and 2.5-D input, runners (PyTorch, ONNX Runtime), nodules."""

from napari_lungkd.inference.segmenter import Segmentation, iter_segment, segment

__all__ = ["Segmentation", "iter_segment", "segment"]
