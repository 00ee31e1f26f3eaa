"""Volume image files (NIfTI, MetaImage, NRRD) read with SimpleITK into a CtVolume.

SimpleITK gives the geometry in patient LPS coordinates whatever the file's own convention (NIfTI's
RAS is converted by ITK), so origin, spacing and direction are kept as ITK reports them, then the
volume is brought to identity direction when that is a pure axis permutation
(:mod:`.orientation`). Integral values that fit become int16; other values float32.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from napari_lungkd.ct import CtVolume
from napari_lungkd.errors import CtLoadError
from napari_lungkd.io.image_header import check_declared_size, nifti_non_finite, precheck
from napari_lungkd.io.orientation import to_identity
from napari_lungkd.io.validate import check_memory, validate_ct

_FORMATS = {
    ".nii": "NIfTI",
    ".gz": "NIfTI",
    ".mhd": "MetaImage",
    ".mha": "MetaImage",
    ".nrrd": "NRRD",
}


_TAGS = {
    "NIfTI": {
        "spacing_z": "pixdim[3]",
        "spacing_y": "pixdim[2]",
        "spacing_x": "pixdim[1]",
        "origin": "the qform/sform offset",
        "direction": "the qform/sform direction",
        "voxels": "the NIfTI voxel data",
    },
    "MetaImage": {
        "spacing_z": "ElementSpacing[2]",
        "spacing_y": "ElementSpacing[1]",
        "spacing_x": "ElementSpacing[0]",
        "origin": "Offset",
        "direction": "TransformMatrix",
        "voxels": "the MetaImage voxel data",
    },
    "NRRD": {
        "spacing_z": "the third space direction",
        "spacing_y": "the second space direction",
        "spacing_x": "the first space direction",
        "origin": "space origin",
        "direction": "space directions",
        "voxels": "the NRRD voxel data",
    },
}


def load_image_file(path: Path) -> CtVolume:
    """Read a ``.nii``/``.nii.gz``/``.mhd``/``.mha``/``.nrrd`` CT volume.

    The header is checked first (:mod:`.image_header`: impossible spacing, data files outside
    the folder, decompression bombs), the memory the volume needs is estimated from the declared
    size, and the result goes through :func:`~napari_lungkd.io.validate.validate_ct`."""
    import SimpleITK as sitk

    from napari_lungkd.io.nifti_check import nifti_shortfall

    fmt = _FORMATS.get(path.suffix.lower(), "an image file")
    facts = precheck(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
        n_components = reader.GetNumberOfComponents()
        size = reader.GetSize()
        if n_components != 1:
            raise CtLoadError(
                f"{path} has {n_components} values per voxel (a colour or vector image), "
                "not a CT volume."
            )
        if len(size) == 4 and size[3] == 1:  # a 3-D volume stored with a time axis of 1
            reader.SetExtractIndex([0, 0, 0, 0])
            reader.SetExtractSize([size[0], size[1], size[2], 0])
        elif len(size) not in (2, 3):
            raise CtLoadError(f"{path} is a {len(size)}-D image; a CT volume is 3-D.")
        n_voxels = int(np.prod([int(s) for s in size[:3]], dtype=np.int64))
        item = sitk.Image([1, 1], reader.GetPixelID()).GetSizeOfPixelComponent()
        declared = n_voxels * item
        check_declared_size(path, facts, declared)
        dims = " x ".join(str(int(s)) for s in size)
        # SimpleITK's image + its numpy copy + the HU array (float32 at most)
        check_memory(n_voxels * (2 * item + 4), f"{path} declares {dims} voxels")
        short = nifti_shortfall(path)  # SimpleITK reads a cut file silently, zeros for the rest
        if short:  # (after the bomb and memory checks: those say more, and cost nothing)
            raise CtLoadError(f"{path} is cut short ({short}); copy or export it again.")
        image = reader.Execute()
    except RuntimeError as exc:
        raise CtLoadError(f"{path} cannot be read as {fmt} ({_itk_reason(exc)}).") from None
    if image.GetDimension() == 2:
        image = sitk.JoinSeries([image])
    spacing_xyz = image.GetSpacing()
    origin = tuple(float(v) for v in image.GetOrigin())
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    pixel_type = image.GetPixelIDTypeAsString()
    array = sitk.GetArrayFromImage(image)
    del image
    if array.size == 0:
        raise CtLoadError(f"{path} holds an empty image (size {tuple(size)}).")
    if facts.nifti is not None and array.dtype.kind == "f":
        bad = nifti_non_finite(path, facts.nifti, array.size)
        if bad is not None:  # SimpleITK read them as 0; put them back for validate_ct
            array.reshape(-1)[bad[bad < array.size]] = np.nan
    hu = _as_hu(array)
    del array
    hu, spacing, origin, direction, change = to_identity(
        hu, tuple(float(s) for s in spacing_xyz[::-1]), origin, direction
    )
    warnings = list(facts.warnings)
    if change is None:
        warnings.append(
            "the image axes are oblique to the patient axes; the direction is kept, so views "
            "that ignore it are not in patient coordinates"
        )
    stem = path.name[: -len(".nii.gz")] if path.name.lower().endswith(".nii.gz") else path.stem
    series_uid = stem if re.fullmatch(r"\d+(\.\d+){3,}", stem) else None  # LUNA16 names by UID
    ct = CtVolume(
        hu=hu,
        spacing_mm=spacing,  # type: ignore[arg-type]
        origin_mm=origin,  # type: ignore[arg-type]
        direction=direction,
        series_uid=series_uid,
        source=str(path),
        metadata={
            "source_kind": "image_file",
            "format": fmt,
            "stored_pixel_type": pixel_type,
            "reorientation": None
            if change is None
            else {"transpose": change.transpose, "flip": change.flip},
        },
        warnings=tuple(warnings),
    )
    return validate_ct(ct, _TAGS.get(fmt))


def _as_hu(array: np.ndarray) -> np.ndarray:
    """int16 when every value is an integer in int16's range, float32 otherwise."""
    if array.dtype == np.int16:
        return array
    if array.dtype.kind in "iub":
        lo, hi = int(array.min()), int(array.max())
        if -32768 <= lo and hi <= 32767:
            return array.astype(np.int16)
        return array.astype(np.float32)
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        return array
    lo, hi = float(array.min()), float(array.max())
    if -32768 <= lo and hi <= 32767 and np.array_equal(array, np.round(array)):
        return array.astype(np.int16)
    return array


def _itk_reason(exc: RuntimeError) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for line in reversed(lines):
        if "ITK ERROR" in line or "Could not" in line or "Unable" in line:
            return line.split(":", 2)[-1].strip()[:200]
    return (lines[-1] if lines else "unreadable")[:200]
