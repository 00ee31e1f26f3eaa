"""load_ct: any supported CT input (DICOM folder or file, NIfTI, MetaImage, NRRD) into a CtVolume."""

from __future__ import annotations

from pathlib import Path

from napari_lungkd.ct import CtVolume
from napari_lungkd.io.sniff import is_image_file_name


def load_ct(path, series_uid: str | None = None) -> CtVolume:
    """Load a chest CT from a DICOM folder or file, NIfTI, MHD/MHA or NRRD.

    * a folder is searched recursively for DICOM files; they are grouped by SeriesInstanceUID and
      the series named by ``series_uid`` is loaded, otherwise the one with the most slices;
    * a DICOM file gives one slice, or every frame of an Enhanced (multi-frame) CT;
    * ``.nii``, ``.nii.gz``, ``.mhd``, ``.mha`` and ``.nrrd`` are read with SimpleITK.

    Whenever the stored direction is a signed axis permutation the volume is reoriented so that
    ``direction`` is the identity (napari then needs only ``scale`` and ``translate``). Problems that
    do not stop loading end up in ``warnings``. Raises :class:`~napari_lungkd.errors.CtLoadError`
    with one clear sentence naming the path on bad input.
    """
    from napari_lungkd.errors import CtLoadError

    path = Path(path).expanduser()
    if not path.exists():
        raise CtLoadError(f"{path} does not exist.")
    if path.is_dir():
        from napari_lungkd.io.dicom.series import load_dicom_folder

        return load_dicom_folder(path, series_uid)
    if is_image_file_name(path):
        from napari_lungkd.io.image_file import load_image_file

        if series_uid is not None:
            raise CtLoadError(f"{path} is not DICOM, so it has no series {series_uid} to choose.")
        return load_image_file(path)
    from napari_lungkd.io.dicom.series import load_dicom_file

    return load_dicom_file(path, series_uid)
