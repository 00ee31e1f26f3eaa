"""load_ct: any supported CT input (DICOM folder or file, NIfTI, MetaImage, NRRD) into a CtVolume."""

from __future__ import annotations

from napari_lungkd.ct import CtVolume
from napari_lungkd.io.sniff import DICOM_FOLDER, IMAGE_FILE, sniff


def load_ct(path, series_uid: str | None = None) -> CtVolume:
    """Load a chest CT from a DICOM folder or file, NIfTI, MHD/MHA or NRRD.

    What the path is comes from :func:`~napari_lungkd.io.sniff.sniff` (the table the napari reader
    and the CLI use too); a path it refuses raises with its reason.

    * a folder is searched recursively for DICOM files; they are grouped by SeriesInstanceUID and
      the series named by ``series_uid`` is loaded, otherwise the one with the most slices;
    * a DICOM file gives every frame of an Enhanced (multi-frame) CT; one slice of a series gives
      the whole series from the file's folder (same SeriesInstanceUID), with a warning saying so,
      as radiology viewers do; a slice alone in its folder is a one-slice CT (viewable, but
      segmentation refuses it);
    * ``.nii``, ``.nii.gz``, ``.mhd``, ``.mha`` and ``.nrrd`` are read with SimpleITK.

    Whenever the stored direction is a signed axis permutation the volume is reoriented so that
    ``direction`` is the identity (napari then needs only ``scale`` and ``translate``). Problems that
    do not stop loading end up in ``warnings``. Raises :class:`~napari_lungkd.errors.CtLoadError`
    with one clear sentence naming the path on bad input.
    """
    from napari_lungkd.errors import CtLoadError

    info = sniff(path)
    if not info.is_ct:
        raise CtLoadError(info.reason)
    if info.kind == DICOM_FOLDER:
        from napari_lungkd.io.dicom.series import load_dicom_folder

        return load_dicom_folder(info.path, series_uid)
    if info.kind == IMAGE_FILE:
        from napari_lungkd.io.image_file import load_image_file

        if series_uid is not None:
            raise CtLoadError(
                f"{info.path} is not DICOM, so it has no series {series_uid} to choose."
            )
        return load_image_file(info.path)
    from napari_lungkd.io.dicom.series import load_dicom_file

    return load_dicom_file(info.path, series_uid)
