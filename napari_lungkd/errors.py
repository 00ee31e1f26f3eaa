"""Exception types: every refusal of bad input is one of these, with one clear sentence.

The message names the file (or the setting) and what is wrong with it, so that the viewer and
the CLI can show it as it is, without a traceback.
"""

from __future__ import annotations


class LungKDError(Exception):
    """Base class of every error that napari-lungkd raises on purpose."""


class CtLoadError(LungKDError):
    """A path that is not a readable chest CT (missing, broken, wrong modality, no image)."""


class LidcXmlError(LungKDError):
    """An LIDC XML file that cannot be used (not XML, radiograph read, unsafe, malformed)."""


class WeightsError(LungKDError):
    """A weights file that is missing, tampered with, or does not fit the model spec."""


class ModelError(LungKDError):
    """A model name, device or setting that cannot be honoured."""


class ExportError(LungKDError):
    """A mask that cannot be written (wrong shape, existing file, unwritable place)."""


class TrainingError(LungKDError):
    """A training configuration, cache or split that cannot be used."""
