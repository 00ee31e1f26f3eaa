"""What counts as a CT input: the one suffix table that load_ct, the napari reader and the CLI share."""

from __future__ import annotations

IMAGE_FILE_SUFFIXES = (".nii", ".nii.gz", ".mhd", ".mha", ".nrrd")
"""File names that :func:`load_ct` reads with SimpleITK; anything else is tried as DICOM."""


def is_image_file_name(path) -> bool:
    """True when ``path`` names a NIfTI, MetaImage or NRRD file (by its suffix)."""
    return str(path).lower().endswith(IMAGE_FILE_SUFFIXES)
