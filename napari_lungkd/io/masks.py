"""Masks on disk in the CT's own geometry: NIfTI (.nii, .nii.gz) and NRRD, uint8, written atomically.

    save_mask(path, mask, ct, provenance=..., dicom_seg=..., ...) -> {kind: Path}   the one save
        that the CLI and the GUI share: mask + NRRD / DICOM-SEG on request + provenance sidecar
    write_mask(path, mask, ct, overwrite=False) -> Path
    write_image(path, image, array, overwrite=False) -> Path   written, read back, then renamed
    read_mask(path, ct) -> np.ndarray (z, y, x) uint8, aligned to ct
    ct_image(array, ct) -> SimpleITK.Image with the CT's origin, spacing and direction

Geometry is SimpleITK's, i.e. patient LPS, so a mask written here overlays the CT voxel for voxel
in any tool that reads the CT from its DICOM series. A mask stored with its axes permuted or
flipped (another tool's RAS habits) is brought back to the CT's axes when reading; a mask on any
other grid is refused.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from napari_lungkd.ct import CtVolume
from napari_lungkd.errors import ExportError
from napari_lungkd.files import all_or_nothing, atomic_path, incomplete_write
from napari_lungkd.io.nifti_check import nifti_shortfall
from napari_lungkd.io.orientation import to_identity

MASK_SUFFIXES = (".nii.gz", ".nii", ".nrrd")
_ORIGIN_TOLERANCE_MM = 1e-3
_SPACING_TOLERANCE = 1e-4  # relative
_DIRECTION_TOLERANCE = 1e-4
_MAX_LABEL = 65535


def ct_image(array: np.ndarray, ct: CtVolume):
    """A SimpleITK image of ``array`` ``(z, y, x)`` placed on the CT's grid."""
    import SimpleITK as sitk

    array = np.asarray(array)
    if array.shape != ct.shape:
        raise ExportError(
            f"an array of shape {array.shape} does not fit the CT of shape {ct.shape}."
        )
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing([float(s) for s in ct.spacing_mm[::-1]])
    image.SetOrigin([float(v) for v in ct.origin_mm])
    image.SetDirection([float(v) for v in np.asarray(ct.direction, dtype=float).ravel()])
    return image


def _check_suffix(path: Path) -> None:
    if not path.name.lower().endswith(MASK_SUFFIXES):
        raise ExportError(
            f"{path} has an unsupported extension; masks are saved as .nii.gz, .nii or .nrrd."
        )


def _as_uint8(mask: np.ndarray, ct: CtVolume, max_label: int = 255) -> np.ndarray:
    """``mask`` as uint8 (uint16 when ``max_label`` allows labels above 255 and it holds some)."""
    mask = np.asarray(mask)
    if mask.shape != ct.shape:
        raise ExportError(f"the mask has shape {mask.shape} but the CT has shape {ct.shape}.")
    if mask.dtype == np.uint8:
        return mask
    if mask.dtype == bool:
        return mask.astype(np.uint8)
    if mask.dtype.kind not in "iuf":
        raise ExportError(
            f"the mask has dtype {mask.dtype}; a mask holds integer labels 0-{max_label}."
        )
    lo, hi = (mask.min(), mask.max()) if mask.size else (0, 0)
    if (
        lo < 0
        or hi > max_label
        or (mask.dtype.kind == "f" and not np.array_equal(mask, np.round(mask)))
    ):
        raise ExportError(
            f"the mask holds values from {lo} to {hi}; a mask holds integer labels 0-{max_label}."
        )
    return mask.astype(np.uint8 if hi <= 255 else np.uint16)


def write_mask(
    path, mask: np.ndarray, ct: CtVolume, overwrite: bool = False, max_label: int = 255
) -> Path:
    """Write ``mask`` (``(z, y, x)``, labels 0-255) as uint8 on the CT's grid; returns the path.

    ``max_label`` up to 65535 allows more labels (written as uint16 when any is above 255).

    The format follows the suffix (``.nii.gz``, ``.nii``, ``.nrrd``, compressed). The file is
    written to a temporary name and renamed, so nothing half-written is ever left; an existing
    file is refused unless ``overwrite=True``; what was written is read back before the rename
    (:func:`write_image`), so a full disk leaves no short file.
    """
    path = Path(path).expanduser()
    _check_suffix(path)
    data = _as_uint8(mask, ct, max_label)
    if path.exists() and not overwrite:
        raise ExportError(f"{path} already exists; pass overwrite=True to replace it.")
    try:
        write_image(path, ct_image(data, ct), data, overwrite=overwrite)
    except FileExistsError:
        raise ExportError(f"{path} already exists; pass overwrite=True to replace it.") from None
    return path


def write_image(path, image, array: np.ndarray, overwrite: bool = False) -> Path:
    """Write the SimpleITK ``image`` (whose voxels are ``array``, ``(z, y, x)``) to ``path``,
    compressed, atomically; read back and compared with ``array`` before the rename.

    SimpleITK does not report a full disk: a short file would be renamed into place and read back
    later with slices missing. Here it raises one :class:`ExportError` sentence instead
    (:func:`napari_lungkd.files.incomplete_write`) and ``path`` keeps what it held. What the C
    libraries print on stderr meanwhile is shown only when the file was written completely.
    """
    import SimpleITK as sitk

    path = Path(path)
    with _native_stderr() as printed:
        try:
            with atomic_path(path, overwrite=overwrite, verify=same_image(array)) as tmp:
                sitk.WriteImage(image, str(tmp), True)
        except RuntimeError as exc:  # SimpleITK's own refusal (a short write it did notice)
            raise incomplete_write(path, _last_line(exc)) from None
        except OSError as exc:
            if isinstance(exc, FileExistsError):
                raise
            raise ExportError(f"{path} could not be written ({exc.strerror or exc}).") from None
        printed.keep = True
    return path


def same_image(array: np.ndarray):
    """A ``verify`` for :func:`~napari_lungkd.files.atomic_path`: the image file read back holds
    ``array`` (same shape, same voxels)."""
    import SimpleITK as sitk

    def verify(tmp: Path) -> str | None:
        if tmp.stat().st_size == 0:
            return "0 bytes were written"
        try:
            back = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp)))
        except RuntimeError as exc:
            reason = _last_line(exc).replace(f'"{tmp}"', "it").replace(str(tmp), "it")
            return f"it cannot be read back ({reason.removeprefix('sitk::ERROR: ')})"
        if back.shape != array.shape:
            return f"it reads back with shape {back.shape} instead of {array.shape}"
        if not np.array_equal(back, array):
            return f"{np.count_nonzero(back != array)} voxels read back differ from those written"
        return None

    return verify


def _last_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:200]


class _Printed:
    keep = False


@contextlib.contextmanager
def _native_stderr() -> Iterator[_Printed]:
    """Hold what C code prints on file descriptor 2 (the NIfTI library's "wrote only N of M
    bytes") and print it afterwards only if ``keep`` was set: a failed write gets our sentence."""
    printed = _Printed()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded, closed): leave it
        yield printed
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield printed
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if printed.keep:
                held.seek(0)
                text = held.read().decode(errors="replace")
                if text.strip():
                    print(text, end="", file=sys.stderr)


def read_mask(path, ct: CtVolume) -> np.ndarray:
    """Read a mask file and return it ``(z, y, x)`` on the CT's grid (uint8 where the values fit).

    Raises :class:`ExportError` when the file is missing, unreadable or shorter than its header
    says (:func:`~napari_lungkd.io.nifti_check.nifti_shortfall`), or when its size, spacing,
    origin or direction do not match the CT (after undoing axis flips and permutations).
    """
    import SimpleITK as sitk

    path = Path(path).expanduser()
    if not path.is_file():
        raise ExportError(f"{path} does not exist.")
    short = nifti_shortfall(path)  # SimpleITK reads a short NIfTI without a word
    if short:
        raise ExportError(f"{path} is incomplete ({short}); it was cut short, e.g. by a full disk.")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        raise ExportError(
            f"{path} cannot be read as a mask ({(lines or ['?'])[-1][:200]})."
        ) from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ExportError(f"{path} is not a 3-D single-channel mask.")
    array = sitk.GetArrayFromImage(image)
    spacing = tuple(float(s) for s in image.GetSpacing()[::-1])
    origin = tuple(float(v) for v in image.GetOrigin())
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    ct_direction = np.asarray(ct.direction, dtype=float)
    if np.allclose(ct_direction, np.eye(3), atol=_DIRECTION_TOLERANCE):
        array, spacing, origin, direction, _ = to_identity(array, spacing, origin, direction)
    problems = []
    if array.shape != ct.shape:
        problems.append(f"size {array.shape} vs {ct.shape}")
    if not np.allclose(spacing, ct.spacing_mm, rtol=_SPACING_TOLERANCE, atol=1e-6):
        problems.append(f"spacing {_fmt(spacing)} vs {_fmt(ct.spacing_mm)} mm")
    if not np.allclose(
        origin, ct.origin_mm, atol=_ORIGIN_TOLERANCE_MM + 1e-6 * max(map(abs, origin))
    ):
        problems.append(f"origin {_fmt(origin)} vs {_fmt(ct.origin_mm)} mm")
    if not np.allclose(direction, ct_direction, atol=_DIRECTION_TOLERANCE):
        problems.append("direction differs")
    if problems:
        raise ExportError(
            f"{path} is not on this CT's grid ({'; '.join(problems)}); "
            "it was made for another scan or resampled."
        )
    if array.dtype != np.uint8 and array.size and array.min() >= 0 and array.max() <= 255:
        if np.array_equal(array, np.round(array)):
            array = array.astype(np.uint8)
    return np.ascontiguousarray(array)


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"


def planned_paths(path, ct, nrrd: bool = False, dicom_seg: bool = False) -> dict[str, Path]:
    """The files one :func:`save_mask` of ``path`` writes (kind -> path), to ask before overwriting.

    ``nrrd`` adds a ``<stem>.nrrd`` twin; ``dicom_seg`` a ``<stem>.seg.dcm`` when the CT came from
    DICOM (it needs the source slices); the sidecar ``<stem>.json`` is always written.
    """
    from napari_lungkd.io.sidecar import mask_stem, sidecar_path

    path = Path(path).expanduser()
    if not path.name.lower().endswith(MASK_SUFFIXES):
        raise ExportError(
            f"cannot save {path.name}: choose a name ending in .nii.gz, .nii or .nrrd."
        )
    stem = mask_stem(path)
    out = {"mask": path}
    if nrrd and not path.name.lower().endswith(".nrrd"):
        out["nrrd"] = path.with_name(f"{stem}.nrrd")
    if dicom_seg and ct is not None and ct.sop_uids:
        out["dicom_seg"] = path.with_name(f"{stem}.seg.dcm")
    out["sidecar"] = sidecar_path(path)
    return out


def save_mask(
    path,
    mask: np.ndarray,
    ct: CtVolume | None,
    *,
    provenance=None,
    model_mask: np.ndarray | None = None,
    nrrd: bool = False,
    dicom_seg: bool = False,
    overwrite: bool = False,
    labels: bool = False,
) -> dict[str, Path]:
    """Save a mask the one way the GUI and the CLI both use; returns kind -> path written.

    Writes the mask (format by suffix), an optional NRRD twin and DICOM-SEG (see
    :func:`planned_paths`) and the provenance sidecar (:mod:`napari_lungkd.io.sidecar`), each
    atomically. Nothing is written when any target exists and ``overwrite`` is false; if a write
    fails (a full disk included), every file is put back as it was
    (:func:`~napari_lungkd.files.all_or_nothing`). The mask is saved binary (nonzero = nodule)
    unless ``labels`` keeps its values (0-65535; uint16 where a label passes 255): a model's
    result is saved labelled, nodule ``i`` of its table as label ``i``, and its DICOM-SEG then has
    one segment per nodule (:func:`~napari_lungkd.io.dicom.seg.write_dicom_seg`). ``provenance``
    is a dict or has ``to_dict()``; ``model_mask`` (the model's own mask) gives the sidecar its
    edit summary.
    """
    from napari_lungkd.files import write_json
    from napari_lungkd.io.sidecar import build_sidecar, provenance_dict

    name = Path(path).name
    if ct is None:
        raise ExportError(
            f"cannot save {name}: the mask carries no CT geometry; segment or load the mask "
            "onto a CT first."
        )
    mask = np.asarray(mask)
    if mask.shape != ct.shape:
        raise ExportError(
            f"cannot save {name}: mask shape {mask.shape} differs from the CT's {ct.shape}."
        )
    data = _as_uint8(mask, ct, _MAX_LABEL) if labels else (mask > 0).astype(np.uint8)
    paths = planned_paths(path, ct, nrrd=nrrd, dicom_seg=dicom_seg)
    existing = [p for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise ExportError(
            f"{existing[0]} already exists; choose another name or allow overwriting."
        )
    prov = provenance_dict(provenance)
    edits = None
    if model_mask is not None and np.shape(model_mask) == mask.shape:
        from napari_lungkd.scoring.comparison import edit_summary

        edits = edit_summary(model_mask, data)
    seg_note = None
    with all_or_nothing(paths.values()):  # a failed write puts every file back as it was
        for kind in ("mask", "nrrd"):
            if kind in paths:
                write_mask(paths[kind], data, ct, overwrite=overwrite, max_label=_MAX_LABEL)
        if "dicom_seg" in paths:
            from napari_lungkd.io.dicom.seg import segment_plan, write_dicom_seg

            seg_note = segment_plan(data, labels)[1]
            write_dicom_seg(
                paths["dicom_seg"],
                data,
                ct,
                overwrite=overwrite,
                labels=labels,
                algorithm_name=f"napari-lungkd {prov.get('model') or 'manual'}",
                edited_by_hand=bool(edits and (edits["voxels_added"] or edits["voxels_removed"])),
            )
        files = {k: p for k, p in paths.items() if k != "sidecar"}
        doc = build_sidecar(files, data, ct, prov, edits, _labels_note(data, labels, seg_note))
        try:
            write_json(paths["sidecar"], doc, overwrite=overwrite)
        except (OSError, ValueError, TypeError) as exc:
            raise ExportError(f"{paths['sidecar']} could not be written ({exc}).") from None
    return paths


def _labels_note(data: np.ndarray, labels: bool, seg_note: str | None) -> str:
    """How to read the saved values (the sidecar's ``labels``), and what the DICOM-SEG holds."""
    n = int(data.max()) if data.size else 0
    text = (
        f"labelled: label i is nodule i of the nodule table (rows 1-{n}); 0 is background"
        if labels
        else "binary: 1 is nodule, 0 is background"
    )
    return f"{text}; {seg_note}" if seg_note else text
