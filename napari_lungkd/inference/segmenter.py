"""segment(): from a CtVolume to a nodule mask, with timings and provenance.

The steps, each timed:

1. *load*: the model and its weights (skipped when a :class:`~napari_lungkd.inference.torch_runner.LoadedModel`
   is passed in; its own load time is reported);
2. *preprocess*: the lung region (:mod:`napari_lungkd.inference.lung_region`, no model), HU window and
   normalisation of the slices that contain lung, cropped to the lung box (a multiple of 32);
   the result (:class:`PreparedInput`) is kept on the :class:`Segmentation` so that a second model
   with the same preprocessing (teacher after student) skips this step;
3. *model*: batched prediction (:class:`~napari_lungkd.inference.torch_runner.BatchRunner`);
4. *post-process*: probabilities back into the full CT grid (float16), threshold, nodule table.

:func:`iter_segment` is a generator: it yields :class:`~napari_lungkd.progress.Progress` per batch
and returns the :class:`Segmentation`; closing it stops the work and nothing is returned or
written. :func:`segment` runs it to the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from napari_lungkd import __version__
from napari_lungkd.errors import ModelError
from napari_lungkd.inference.lung_region import LungRegion, find_lung_region, whole_volume
from napari_lungkd.models.specs import (
    ModelSpec,
    background_value,
    pad_to_multiple,
    preprocess_slices,
)
from napari_lungkd.progress import Progress, ProgressGen, run_to_end

CHUNK_SLICES = 8
"""Consecutive slices that share one crop box (a box per run follows the lungs' size along z)."""


@dataclass(frozen=True, eq=False)
class InputChunk:
    """A run of consecutive lung slices cropped to their own box, ready for the model."""

    z_indices: np.ndarray
    box_yx: tuple[int, int, int, int]
    inputs: np.ndarray
    """``(n, context_slices, H, W)`` float32, H and W padded to the size multiple."""

    @property
    def crop_hw(self) -> tuple[int, int]:
        y0, y1, x0, x1 = self.box_yx
        return (y1 - y0, x1 - x0)


@dataclass(frozen=True, eq=False)
class PreparedInput:
    """The model input of one CT: lung region + normalised, cropped, padded slices in chunks."""

    region: LungRegion
    preprocessing: dict
    chunks: tuple[InputChunk, ...]
    ct_shape: tuple[int, int, int]
    ct_key: tuple
    seconds: float = 0.0

    @property
    def n_slices(self) -> int:
        return sum(len(c.z_indices) for c in self.chunks)

    @property
    def pixels_per_ct_slice(self) -> float:
        """Model input pixels, in units of whole CT slices (how much work the crop left)."""
        total = sum(c.inputs.shape[0] * c.inputs.shape[2] * c.inputs.shape[3] for c in self.chunks)
        return total / float(self.ct_shape[1] * self.ct_shape[2])

    def fits(self, ct, spec: ModelSpec) -> bool:
        return self.ct_key == _ct_key(ct) and self.preprocessing == spec.preprocessing()


@dataclass(frozen=True, eq=False)
class Segmentation:
    """What one model found in one CT."""

    probability: np.ndarray
    """float16 ``(z, y, x)`` on the CT's grid; 0 outside the lung region."""
    mask: np.ndarray
    """uint8 ``(z, y, x)``: 1 where probability >= threshold."""
    nodules: list
    """:class:`~napari_lungkd.inference.nodules.Nodule` records, largest first."""
    timings: dict[str, float]
    """Seconds: ``load`` (model + weights; paid before this call when a LoadedModel was given),
    ``backend_setup`` (ONNX session), ``lung_region``, ``preprocess`` (0 when reused), ``model``,
    ``postprocess`` (paste, threshold, nodules), ``total`` (this call); ``slices`` run,
    ``slices_per_s`` and ``ms_per_slice`` of the model stage."""
    provenance: dict[str, Any]
    prepared: PreparedInput | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def model_name(self) -> str:
        return self.provenance.get("model", "")


def _ct_key(ct) -> tuple:
    return (
        id(ct.hu),
        tuple(ct.hu.shape),
        str(getattr(ct, "source", "")),
        getattr(ct, "series_uid", None),
    )


def _check_ct(ct) -> None:
    hu = getattr(ct, "hu", None)
    if not isinstance(hu, np.ndarray) or hu.ndim != 3 or min(hu.shape) < 1:
        source = getattr(ct, "source", "") or "the CT"
        raise ModelError(
            f"{source} is not a 3-D CT volume (hu shape {getattr(hu, 'shape', None)}); cannot segment it."
        )


def iter_prepare(
    ct, spec: ModelSpec, use_lung_region: bool = True, chunk_slices: int = CHUNK_SLICES
) -> ProgressGen[PreparedInput]:
    """Lung region + preprocessing, yielding Progress per chunk of slices."""
    t0 = time.perf_counter()
    hu = ct.hu
    if spec.target_spacing_mm is not None:
        raise ModelError(
            f"Model {spec.name!r} wants in-plane resampling to {spec.target_spacing_mm} mm, which this version does not do."
        )
    region = (
        find_lung_region(hu, ct.spacing_mm, multiple=spec.size_multiple)
        if use_lung_region
        else whole_volume(hu.shape)
    )
    runs = region.chunks(chunk_slices)
    n = len(region.z_indices)
    fill = background_value(spec)
    yield Progress(0, n, "preprocess", f"{n}/{hu.shape[0]} slices with lung")
    chunks, done = [], 0
    for idx, (y0, y1, x0, x1) in runs:
        part = preprocess_slices(hu[:, y0:y1, x0:x1], spec, indices=idx)
        chunks.append(
            InputChunk(idx, (y0, y1, x0, x1), pad_to_multiple(part, spec.size_multiple, fill)[0])
        )
        done += len(idx)
        yield Progress(done, n, "preprocess", f"box {y1 - y0}x{x1 - x0}")
    return PreparedInput(
        region,
        spec.preprocessing(),
        tuple(chunks),
        tuple(hu.shape),
        _ct_key(ct),
        time.perf_counter() - t0,
    )


def iter_segment(
    ct,
    model="student",
    device: str = "auto",
    threshold: float | None = None,
    weights=None,
    batch_size: int | None = None,
    prepared: PreparedInput | None = None,
    num_threads: int | None = None,
    use_lung_region: bool = True,
    min_volume_mm3: float | None = None,
    backend: str = "eager",
) -> ProgressGen[Segmentation]:
    """Segment ``ct`` with ``model``; yields Progress, returns a :class:`Segmentation`.

    ``model``: a name (``student``, ``teacher``...), a LoadedModel, or a ``(module, ModelSpec)`` pair.
    ``weights``: a weights file path, ``"random"`` (tests/timing), or None to look them up.
    ``prepared``: a previous Segmentation's ``prepared``, reused when its preprocessing matches.
    ``backend``: ``eager`` (PyTorch) or ``onnx`` (ONNX Runtime, CPU; see :mod:`napari_lungkd.inference.onnx_runner`).
    """
    from napari_lungkd.inference.nodules import DEFAULT_MIN_VOLUME_MM3, find_nodules
    from napari_lungkd.inference.onnx_runner import make_runner
    from napari_lungkd.inference.torch_runner import (
        as_loaded_model,
        cpu_threads,
        default_batch_size,
        resolve_device,
        torch_threads,
    )

    _check_ct(ct)
    t_start = time.perf_counter()
    dev = resolve_device(device)
    yield Progress(0, 1, "load", f"model {model if isinstance(model, str) else 'given'}")
    # ONNX Runtime needs no torch module when its export of these weights is cached
    loaded = as_loaded_model(model, weights, build=backend != "onnx")
    spec = loaded.spec
    thr = float(spec.threshold if threshold is None else threshold)
    if not 0.0 < thr < 1.0:
        raise ModelError(f"Threshold {thr} is outside (0, 1).")
    yield Progress(1, 1, "load", loaded.name)
    notes: list[str] = list(loaded.warnings)

    reused = prepared is not None and prepared.fits(ct, spec)
    if prepared is not None and not reused:
        notes.append("the prepared input given was not reused (other CT or other preprocessing)")
    if not reused:
        chunk = max(CHUNK_SLICES, batch_size or default_batch_size(dev, spec))
        prepared = yield from iter_prepare(ct, spec, use_lung_region, chunk)
    t_pre = 0.0 if reused else prepared.seconds
    if not prepared.region.found:
        notes.append("no lung found by the HU threshold; the whole volume was segmented")

    threads = (num_threads or cpu_threads()) if dev.type == "cpu" else None
    n = prepared.n_slices
    probability = np.zeros(ct.hu.shape, dtype=np.float16)
    mask = np.zeros(ct.hu.shape, dtype=np.uint8)
    t_paste = 0.0
    with torch_threads(threads):
        runner = make_runner(loaded, dev, batch_size, backend, threads)
        t_model0 = time.perf_counter()
        done = 0
        yield Progress(0, n, "model", f"{loaded.name} on {dev}")
        for chunk in prepared.chunks:
            (y0, y1, x0, x1), (h, w) = chunk.box_yx, chunk.crop_hw
            i = 0
            while i < len(chunk.inputs):
                step = runner.batch_size  # may shrink after an out-of-memory retry
                probs = runner.predict(chunk.inputs[i : i + step])[:, :h, :w]
                tp = time.perf_counter()
                z = chunk.z_indices[i : i + step]
                i += len(z)
                probability[z, y0:y1, x0:x1] = probs
                mask[z, y0:y1, x0:x1] = probs >= thr
                t_paste += time.perf_counter() - tp
                done += len(z)
                rate = done / max(time.perf_counter() - t_model0, 1e-9)
                yield Progress(done, n, "model", f"{rate:.1f} slices/s")
        t_model = time.perf_counter() - t_model0 - t_paste

    t_post0 = time.perf_counter()
    yield Progress(1, 2, "post-process", "nodules")
    nodules = find_nodules(
        mask,
        ct.spacing_mm,
        hu=ct.hu,
        probability=probability,
        min_volume_mm3=DEFAULT_MIN_VOLUME_MM3 if min_volume_mm3 is None else min_volume_mm3,
        ct=ct if hasattr(ct, "index_to_lps") else None,
    )
    t_post = time.perf_counter() - t_post0 + t_paste
    yield Progress(2, 2, "post-process", f"{len(nodules)} nodules")

    notes += runner.warnings
    total = time.perf_counter() - t_start
    timings = {
        "load": round(loaded.load_seconds, 4),
        "backend_setup": round(getattr(runner, "setup_seconds", 0.0), 4),
        "preprocess": round(t_pre, 4),
        "lung_region": round(prepared.region.seconds, 4),
        "model": round(t_model, 4),
        "postprocess": round(t_post, 4),
        "total": round(total, 4),
        "slices": n,
        "slices_per_s": round(n / t_model, 2) if t_model > 0 else 0.0,
        "ms_per_slice": round(1000 * t_model / n, 2) if n else 0.0,
    }
    provenance = {
        "model": loaded.name,
        "encoder": spec.encoder,
        "n_parameters": loaded.n_parameters,
        "weights_sha256": loaded.weights_label,
        "weights_path": str(loaded.weights_path) if loaded.weights_path else None,
        "package": "napari-lungkd",
        "package_version": __version__,
        "device": str(runner.device),
        "precision": runner.precision,
        "backend": backend,
        "threads": threads,
        "batch_size": runner.batch_size,
        "threshold": thr,
        "spec": spec.to_dict(),
        "lung_region": {
            **prepared.region.to_dict(),
            "model_pixels_in_ct_slices": round(prepared.pixels_per_ct_slice, 2),
        },
        "prepared_reused": reused,
        "ct_source": str(getattr(ct, "source", "")),
        "series_uid": getattr(ct, "series_uid", None),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "warnings": list(notes),
    }
    return Segmentation(probability, mask, nodules, timings, provenance, prepared, tuple(notes))


def segment(ct, model="student", device: str = "auto", **kwargs) -> Segmentation:
    """:func:`iter_segment` run to its end."""
    return run_to_end(iter_segment(ct, model, device, **kwargs))
