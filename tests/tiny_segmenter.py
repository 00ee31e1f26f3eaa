"""`lungkd segment` with one-convolution stand-ins for the student and the teacher (no weights
file, no ResNet build): the CLI, the files and the reports are real, the model is tiny."""

from __future__ import annotations


def use_tiny_models(monkeypatch) -> list[str]:
    """Make every Segmenter the CLI builds a :class:`tiny_models.HuThresholdNet` under the model's
    own spec; returns the list of model names built (in order)."""
    from tiny_models import HuThresholdNet

    import napari_lungkd.inference as inference
    from napari_lungkd.models.specs import get_spec

    built: list[str] = []

    class TinySegmenter(inference.Segmenter):
        def __init__(self, model, weights=None, settings=None, **kw):
            built.append(model)
            super().__init__((HuThresholdNet(), get_spec(model)), settings=settings, **kw)

    monkeypatch.setattr(inference, "Segmenter", TinySegmenter)
    return built
