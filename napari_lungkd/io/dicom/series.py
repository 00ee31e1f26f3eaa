"""DICOM series: find the CT images under a folder, pick one series, and load it as a CtVolume.

The folder is searched recursively (TCIA nests patient/study/series). Files are grouped by
SeriesInstanceUID; the series the caller names is loaded, otherwise the one with the most slices,
and the others are listed in ``metadata["other_series"]`` and a warning. Headers are read first
(pixels left on disk), slices are ordered along the slice normal (:mod:`.dicom_geometry`), then the
pixels are decoded straight into one preallocated volume (:mod:`.dicom_pixels`). Broken files among
good ones are skipped with a warning that names them; non-CT objects (SR, RTSTRUCT, SEG, MR...) are
ignored and counted in ``metadata["ignored_files"]``.
"""

from __future__ import annotations

import warnings as pywarnings
from pathlib import Path

import numpy as np
import pydicom

from napari_lungkd.ct import CtVolume
from napari_lungkd.errors import CtLoadError
from napari_lungkd.io.dicom.geometry import GeometryError, order_frames
from napari_lungkd.io.dicom.header import DicomImage, NotCtImage, read_image_header
from napari_lungkd.io.dicom.majority import drop_minority
from napari_lungkd.io.dicom.pixels import (
    AIR_HU,
    check_rescale,
    fix_pixel_representation,
    read_volume,
)
from napari_lungkd.io.orientation import to_identity
from napari_lungkd.io.sniff import DICOM_SUFFIXES
from napari_lungkd.io.validate import check_memory, validate_ct

_DICOM_TAGS = {
    "spacing_z": "the slice spacing (ImagePositionPatient / SliceThickness)",
    "spacing_y": "PixelSpacing[0]",
    "spacing_x": "PixelSpacing[1]",
    "origin": "ImagePositionPatient",
    "direction": "ImageOrientationPatient",
    "voxels": "the pixel data (after RescaleSlope/RescaleIntercept)",
}
_MAX_NAMED = 5  # skipped files named one by one in the warnings; the rest are counted
_HEADER_FIELDS = {
    "patient_id": "PatientID",
    "study_uid": "StudyInstanceUID",
    "modality": "Modality",
    "sop_class_uid": "SOPClassUID",
    "series_description": "SeriesDescription",
    "series_number": "SeriesNumber",
    "study_date": "StudyDate",
    "manufacturer": "Manufacturer",
    "manufacturer_model": "ManufacturerModelName",
    "convolution_kernel": "ConvolutionKernel",
    "slice_thickness_mm": "SliceThickness",
    "kvp": "KVP",
    "patient_position": "PatientPosition",
    "body_part": "BodyPartExamined",
    "frame_of_reference_uid": "FrameOfReferenceUID",
}


def load_dicom_folder(
    folder: Path, series_uid: str | None = None, recursive: bool = True
) -> CtVolume:
    """Load one CT series found anywhere under ``folder`` (only in it, unless ``recursive``)."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in found if p.is_file() and not p.name.startswith("."))
    if not files:
        raise CtLoadError(f"Folder {folder} is empty: there is no CT image in it.")
    images: list[DicomImage] = []
    refused: list[tuple[Path, NotCtImage]] = []
    for path in files:
        try:
            images.append(read_image_header(path))
        except NotCtImage as exc:
            if exc.kind == "not_dicom" and path.name.lower().endswith(DICOM_SUFFIXES):
                exc = NotCtImage("broken", "is named like a DICOM file but is not one")
            refused.append((path, exc))
    if not images:
        raise CtLoadError(_nothing_found(folder, refused))

    series: dict[str, list[DicomImage]] = {}
    for image in images:
        series.setdefault(image.series_uid, []).append(image)
    ranked = sorted(series, key=lambda uid: (-sum(len(i.frames) for i in series[uid]), uid))
    warnings: list[str] = []
    if series_uid is not None:
        if series_uid not in series:
            raise CtLoadError(
                f"Folder {folder} has no CT series {series_uid}; "
                f"its CT series are {', '.join(ranked)}."
            )
        chosen = series_uid
    else:
        chosen = ranked[0]
    others = [_series_summary(uid, series[uid]) for uid in ranked if uid != chosen]
    if others:
        listed = "; ".join(f"{o['series_uid']} ({o['n_slices']} slice(s))" for o in others)
        how = "as asked" if series_uid else "it has the most slices"
        warnings.append(
            f"the folder holds {len(others)} other CT series ({listed}); loaded {chosen} "
            f"({how}); pass series_uid to load another"
        )
    skipped = [(p, e.reason) for p, e in refused if e.kind == "broken"]
    ignored: dict[str, int] = {}
    for _, exc in refused:
        if exc.kind != "broken":
            key = _kind_label(exc)
            ignored[key] = ignored.get(key, 0) + 1
    notes = {"other_series": others, "ignored_files": ignored, "files_scanned": len(files)}
    return _assemble(series[chosen], folder, skipped, warnings, notes)


def load_dicom_file(path: Path, series_uid: str | None = None) -> CtVolume:
    """Load a single DICOM file: every frame of an Enhanced (multi-frame) CT; for one slice of a
    series, the whole series from the file's folder (files with its SeriesInstanceUID), as
    radiology viewers do, with a warning saying so; a slice alone in its folder is one slice."""
    try:
        image = read_image_header(path)
    except NotCtImage as exc:
        if exc.kind == "not_dicom" and path.name.lower().endswith(DICOM_SUFFIXES):
            raise CtLoadError(
                f"{path} is named like a DICOM file but is not one (no DICM marker, and it does "
                "not start with DICOM tags)."
            ) from None
        if exc.kind == "not_dicom":
            raise CtLoadError(
                f"{path} is not a CT image file: it is not DICOM, and its name does not end in "
                ".nii, .nii.gz, .mhd, .mha or .nrrd."
            ) from None
        raise CtLoadError(f"{path} {exc.reason}.") from None
    if series_uid is not None and image.series_uid != series_uid:
        raise CtLoadError(f"{path} belongs to series {image.series_uid}, not {series_uid}.")
    if not image.multi_frame:
        try:
            ct = load_dicom_folder(path.parent, image.series_uid, recursive=False)
        except CtLoadError:  # the rest of the series cannot be assembled: the file alone
            return _assemble([image], path, [], [], {})
        files = {Path(f).resolve() for f in ct.metadata.get("slice_files") or ()}
        if len(files) > 1 and path.resolve() in files:
            from dataclasses import replace

            note = (
                f"{path.name} is one slice of a series; loaded the whole series "
                f"({len(files)} slices, SeriesInstanceUID {image.series_uid}) from {path.parent}"
            )
            return replace(ct, warnings=(note, *ct.warnings))
    return _assemble([image], path, [], [], {})


def _nothing_found(folder: Path, refused: list[tuple[Path, NotCtImage]]) -> str:
    if all(exc.kind == "not_dicom" for _, exc in refused):
        return (
            f"Folder {folder} holds no DICOM files ({len(refused)} other file(s), "
            f"e.g. {refused[0][0].name})."
        )
    if len(refused) == 1:
        path, exc = refused[0]
        return f"Folder {folder} holds no CT image: its only file {path} {exc.reason}."
    kinds: dict[str, int] = {}
    for _, exc in refused:
        if exc.kind in ("not_ct", "non_image"):
            key = _kind_label(exc)
            kinds[key] = kinds.get(key, 0) + 1
    parts = [f"{n} file(s) of {key}" for key, n in sorted(kinds.items())]
    broken = [(p, e) for p, e in refused if e.kind == "broken"]
    if broken:
        parts.append(f"{len(broken)} broken file(s), e.g. {broken[0][0]} {broken[0][1].reason}")
    return f"Folder {folder} holds no CT image series; it has {'; '.join(parts)}."


def _kind_label(exc: NotCtImage) -> str:
    if exc.kind == "not_dicom":
        return "not DICOM"
    if exc.modality == "CT":
        return "CT without pixel data"
    return f"modality {exc.modality}" if exc.modality else "no modality"


def _series_summary(uid: str, images: list[DicomImage]) -> dict:
    description = images[0].header.value(0x0008103E)  # SeriesDescription
    return {
        "series_uid": uid,
        "n_slices": sum(len(i.frames) for i in images),
        "description": str(description or ""),
        "folder": str(images[0].path.parent),
    }


def _assemble(
    images: list[DicomImage], source: Path, skipped: list, warnings: list[str], notes: dict
) -> CtVolume:
    """Order, decode and reorient one series; files that fail are skipped (and named) and it retries."""
    skipped = list(skipped)
    warnings = list(warnings)
    while True:
        where = f"Series {images[0].series_uid} in {source}"
        sizes = [(i.pixels.rows, i.pixels.columns) for i in images]
        images, _, left_out = drop_minority(
            images, sizes, lambda size: f"file(s) whose image size differs from {size[0]}x{size[1]}"
        )
        if left_out:
            warnings.append(left_out)
        if any(i.multi_frame for i in images) and len(images) > 1:
            raise CtLoadError(
                f"{where} mixes {len(images)} files of which some are multi-frame; "
                "open one multi-frame file at a time."
            )
        frames = [f for image in images for f in image.frames]
        frames, rescale_notes = check_rescale(frames, where)
        try:
            ordered = order_frames(frames, _spacing_hint(images[0]))
        except GeometryError as exc:
            raise CtLoadError(f"{where}: {exc}.") from None
        by_path = {image.path: image for image in images}
        rows, columns = images[0].pixels.rows, images[0].pixels.columns
        n = len(ordered.frames)
        check_memory(
            n * rows * columns * 4, f"{where} declares {columns} x {rows} pixels x {n} slices"
        )
        pixels = read_volume(ordered.frames, by_path)
        if not pixels.failures:
            break
        if len(pixels.failures) == len(by_path):
            path, reason = next(iter(pixels.failures.items()))
            raise CtLoadError(f"{path} {reason}.")
        skipped.extend(pixels.failures.items())
        images = [i for i in images if i.path not in pixels.failures]

    if skipped:
        named = [f"{Path(p).name} ({reason})" for p, reason in skipped[:_MAX_NAMED]]
        more = f" and {len(skipped) - _MAX_NAMED} more" if len(skipped) > _MAX_NAMED else ""
        warnings.insert(0, f"skipped {len(skipped)} unreadable file(s): {'; '.join(named)}{more}")
    warnings.extend(rescale_notes)
    warnings.extend(ordered.warnings)
    hu, sign_note = fix_pixel_representation(pixels.hu, ordered.frames, by_path)
    if sign_note:
        warnings.append(sign_note)
    hu, spacing, origin, direction, change = to_identity(
        hu, ordered.spacing_mm, ordered.origin_mm, ordered.direction
    )
    frames = ordered.frames
    sop_uids: tuple[str, ...] | None = tuple(f.sop_uid for f in frames)
    ipps = np.asarray([f.ipp if f.ipp is not None else origin for f in frames], dtype=float)
    if change is None:
        warnings.append(
            "the slices are oblique to the patient axes; the direction is kept, so views that "
            "ignore it are not in patient coordinates"
        )
    elif not change.keeps_slice_axis:
        notes["acquisition_sop_uids"] = list(sop_uids or ())
        sop_uids, ipps = None, None
    elif change.flip[0]:
        frames, sop_uids, ipps = frames[::-1], sop_uids[::-1], ipps[::-1]  # type: ignore[index]
    z_positions = None if ipps is None else ipps @ np.asarray(direction)[:, 2]

    meta = _header_metadata(ordered.frames[0].path)
    fmt = by_path[ordered.frames[0].path].pixels
    meta.update(notes)
    meta.update(ordered.notes)
    meta.update(
        source_kind="dicom",
        series_folder=str(ordered.frames[0].path.parent),
        slice_files=[str(f.path) for f in frames] if sop_uids is not None else None,
        transfer_syntax=fmt.transfer_syntax,
        rescale={
            "slope": sorted({f.slope for f in frames}),
            "intercept": sorted({f.intercept for f in frames}),
        },
        skipped_files=[[str(p), reason] for p, reason in skipped],
        reorientation=None
        if change is None
        else {"transpose": change.transpose, "flip": change.flip},
        decoder_warnings=pixels.decoder_warnings,
    )
    if images[0].multi_frame:
        meta["frame_numbers"] = [f.frame_index + 1 for f in frames]  # type: ignore[operator]
    if fmt.padding is not None:
        meta.update(
            pixel_padding_value=fmt.padding[0]
            if fmt.padding[0] == fmt.padding[1]
            else list(fmt.padding),
            padding_hu=AIR_HU,
            padded_voxels=pixels.padded_voxels,
        )
        if pixels.padded_voxels:
            meta["padding_note"] = f"{pixels.padded_voxels} padding pixels set to {AIR_HU} HU (air)"
    patient = meta.pop("patient_id", None)
    ct = CtVolume(
        hu=hu,
        spacing_mm=tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        origin_mm=tuple(float(v) for v in origin),  # type: ignore[arg-type]
        direction=np.asarray(direction, dtype=float),
        sop_uids=sop_uids,
        z_positions_mm=z_positions,
        series_uid=images[0].series_uid,
        patient_id=patient,
        source=str(source),
        metadata=meta,
        warnings=tuple(warnings),
    )
    return validate_ct(ct, _DICOM_TAGS)


def _spacing_hint(image: DicomImage) -> float | None:
    for tag in (0x00180088, 0x00180050):  # SpacingBetweenSlices, SliceThickness
        try:
            value = float(image.header.value(tag))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if value > 0:
            return value
    if image.multi_frame:
        ds = image.header.ds  # type: ignore[union-attr]
        for item in ds.get("SharedFunctionalGroupsSequence") or []:
            for measures in item.get("PixelMeasuresSequence") or []:
                for key in ("SpacingBetweenSlices", "SliceThickness"):
                    if measures.get(key) is not None:
                        return float(measures.get(key))
    return None


def _header_metadata(path: Path) -> dict:
    """Descriptive header values of one file of the series (its first slice), JSON-friendly."""
    with pywarnings.catch_warnings():
        pywarnings.simplefilter("ignore")  # pydicom's value-validation chatter
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        return _describe_header(ds)


def _describe_header(ds) -> dict:
    meta = {}
    for name, keyword in _HEADER_FIELDS.items():
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            meta[name] = [str(v) for v in value]
        elif name.endswith("_mm") or name == "kvp":
            try:
                meta[name] = float(value)
            except (TypeError, ValueError):
                meta[name] = str(value)
        else:
            meta[name] = str(value).strip()
    return meta
