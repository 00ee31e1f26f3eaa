"""Segmenter: a model, its weights and its RunSettings fixed once; every call takes a CT only.

After nnU-Net's ``nnUNetPredictor``. The weights are resolved, read, hashed and the torch module
built once per Segmenter, and its runner (the ONNX Runtime session, or the module on its device)
made once, on the first call or on :meth:`Segmenter.load`. Each call to
:meth:`Segmenter.iter_segment` then times its steps:

1. *load*: model and runner, once per Segmenter; reported by its first result (0 afterwards)
   and not counted in ``total``, which is the time of one CT with the model ready;
2. *preprocess*: lung region, HU window and normalisation of the slices with lung, cropped to
   the lung box (:mod:`napari_lungkd.inference.prepare`); skipped when a previous result's
   ``prepared`` input fits (the teacher after the student);
3. *model*: batched prediction through the :class:`~napari_lungkd.inference.runner.Runner`;
4. *post-process*: probabilities back into the full CT grid (float16), threshold, nodule table.

``iter_segment`` is a generator: it yields :class:`~napari_lungkd.progress.Progress` per batch and
returns the :class:`~napari_lungkd.inference.segmentation.Segmentation`; closing it stops the work
and nothing is returned. :func:`segment` is the one-call form.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import numpy as np

from napari_lungkd import __version__
from napari_lungkd.errors import ModelError
from napari_lungkd.inference.prepare import CHUNK_SLICES, PreparedInput, check_ct, iter_prepare
from napari_lungkd.inference.runner import Runner, RunnerFactory, make_runner
from napari_lungkd.inference.segmentation import Provenance, Segmentation, Timings
from napari_lungkd.inference.settings import RunSettings
from napari_lungkd.models.specs import ModelSpec, get_spec
from napari_lungkd.progress import Progress, ProgressGen, run_to_end


class Segmenter:
    """One model with its weights and settings, ready to segment any number of CTs.

    ``model``: a name (``student``, ``teacher``...), a
    :class:`~napari_lungkd.inference.torch_runner.LoadedModel`, or a ``(torch module, ModelSpec)``
    pair. ``weights``: a weights file, ``"random"`` (timing, tests), or None to look them up.
    ``settings`` (a :class:`RunSettings`) and keyword overrides of it (``device="cpu"``...).
    ``runner_factory(loaded, device, batch_size, threads)`` replaces the backend's runner.
    """

    def __init__(
        self,
        model="student",
        weights=None,
        settings: RunSettings | None = None,
        *,
        runner_factory: RunnerFactory | None = None,
        **overrides,
    ):
        from napari_lungkd.inference.torch_runner import LoadedModel

        self.settings = (settings or RunSettings()).with_(**overrides)
        self._weights = weights
        self._runner_factory = runner_factory
        self._loaded: LoadedModel | None = None
        self._model_name: str | None = None
        if isinstance(model, str):
            self.name = get_spec(model).name  # an unknown name is refused now, not on first use
            self._model_name = model
        elif isinstance(model, LoadedModel):
            self._loaded, self.name = model, model.name
        elif isinstance(model, tuple) and len(model) == 2 and isinstance(model[1], ModelSpec):
            self._loaded = LoadedModel(model[0], model[1])
            self.name = model[1].name
        else:
            raise ModelError(
                f"model must be a name, a LoadedModel or a (module, ModelSpec) pair, not {type(model).__name__}."
            )
        self._runner: Runner | None = None
        self._classifier = None
        self._classifier_loaded = False
        self._threads: int | None = None
        self._unreported = (0.0, 0.0)  # one-time (load, set-up) seconds, for the next result

    def __repr__(self) -> str:
        state = "ready" if self._runner is not None else "not loaded"
        return f"Segmenter({self.name!r}, {self.settings}, {state})"

    # ---- the model, loaded once ------------------------------------------------------------
    @property
    def loaded(self):
        """The :class:`~napari_lungkd.inference.torch_runner.LoadedModel` (read on first use)."""
        if self._loaded is None:
            from napari_lungkd.inference.torch_runner import load_model

            self._loaded = load_model(
                self._model_name, self._weights, build=self.settings.backend != "onnx"
            )
        return self._loaded

    @property
    def spec(self) -> ModelSpec:
        """The model spec as the weights file states it (threshold, preprocessing...)."""
        return self.loaded.spec

    @property
    def weights_sha256(self) -> str | None:
        """SHA-256 of the weights file; None for random weights or a module given in memory."""
        return self.loaded.weights_sha256

    @property
    def threshold(self) -> float:
        t = self.settings.threshold
        return float(self.spec.threshold if t is None else t)

    @property
    def classifier(self):
        """The false-positive classifier the settings name (read once), or None. ``"auto"`` finds
        the model's own (``<name>_fp.safetensors``) only behind the model's own weights (bundled,
        or in the user's weights folder): weights named explicitly (a file, ``"random"``) or a
        module given in memory are not the U-Net that classifier was trained and calibrated behind,
        so they get none unless one is named."""
        if not self._classifier_loaded:
            from napari_lungkd.inference.fp_reduction import load_classifier

            choice = self.settings.classifier
            if choice == "auto" and (self._weights is not None or self._model_name is None):
                choice = "off"
            self._classifier = load_classifier(self.name, choice)
            self._classifier_loaded = True
        return self._classifier

    def load(self) -> Segmenter:
        """Read the weights, build the model and make the runner now (else on the first call)."""
        run_to_end(self._iter_load())
        return self

    def _iter_load(self) -> ProgressGen[None]:
        """Load the model and make the runner unless done; the seconds go to the next result."""
        from napari_lungkd.inference.torch_runner import cpu_threads, resolve_device, torch_threads

        if self._runner is not None:
            return
        yield Progress(0, 1, "load", f"model {self.name}")
        device = resolve_device(self.settings.device)
        loaded = self.loaded  # a LoadedModel given in was paid for before; its cost is reported
        threads = (self.settings.num_threads or cpu_threads()) if device.type == "cpu" else None
        t1 = time.perf_counter()
        with torch_threads(threads):
            if self._runner_factory is not None:
                runner = self._runner_factory(loaded, device, self.settings.batch_size, threads)
            else:
                runner = make_runner(
                    loaded, device, self.settings.batch_size, self.settings.backend, threads
                )
        _ = self.classifier  # read and checked with the weights, not in the middle of a CT
        self._runner, self._threads = runner, threads
        self._unreported = (loaded.load_seconds, time.perf_counter() - t1)
        yield Progress(1, 1, "load", loaded.name)

    # ---- one CT ----------------------------------------------------------------------------
    def iter_segment(self, ct, prepared: PreparedInput | None = None) -> ProgressGen[Segmentation]:
        """Segment ``ct``; yields Progress, returns a Segmentation.

        ``prepared``: a previous Segmentation's ``prepared``, reused when its preprocessing fits."""
        from napari_lungkd.inference.fp_reduction import nodules_and_mask, triage
        from napari_lungkd.inference.nodules import DEFAULT_MIN_VOLUME_MM3
        from napari_lungkd.inference.torch_runner import torch_threads

        check_ct(ct)
        yield from self._iter_load()
        t_start = time.perf_counter()
        (load_s, setup_s), self._unreported = self._unreported, (0.0, 0.0)
        loaded, runner, spec, thr = self.loaded, self._runner, self.spec, self.threshold
        notes: list[str] = list(loaded.warnings)
        runner_notes_before = len(runner.warnings)

        reused = prepared is not None and prepared.fits(ct, spec)
        if prepared is not None and not reused:
            notes.append(
                "the prepared input given was not reused (other CT or other preprocessing)"
            )
        if not reused:
            chunk = max(CHUNK_SLICES, runner.batch_size)
            prepared = yield from iter_prepare(ct, spec, self.settings.use_lung_region, chunk)
        t_pre = 0.0 if reused else prepared.seconds
        if not prepared.region.found:
            notes.append("no lung found by the HU threshold; the whole volume was segmented")

        n = prepared.n_slices
        probability = np.zeros(ct.hu.shape, dtype=np.float16)
        mask = np.zeros(ct.hu.shape, dtype=np.uint8)
        t_paste = 0.0
        with torch_threads(self._threads):
            t_model0 = time.perf_counter()
            done = 0
            yield Progress(0, n, "model", f"{loaded.name} on {runner.device}")
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
        triaged, t_cand = None, 0.0
        if self.classifier is not None:
            yield Progress(0, 2, "candidates", "3-D candidates and their scores")
            triaged = triage(
                probability,
                ct.hu,
                ct.spacing_mm,
                self.classifier,
                self.settings.operating_point,
                self.settings.candidate_threshold,
            )
            t_cand = time.perf_counter() - t_post0
            yield Progress(
                1, 2, "candidates", f"{int(triaged.kept.sum())} of {len(triaged.candidates)} kept"
            )
        yield Progress(1, 2, "post-process", "nodules")
        min_volume = self.settings.min_volume_mm3
        nodules, mask = nodules_and_mask(
            mask,
            ct,
            ct.hu,
            probability,
            DEFAULT_MIN_VOLUME_MM3 if min_volume is None else min_volume,
            triaged,
        )
        t_post = time.perf_counter() - t_post0 + t_paste
        yield Progress(2, 2, "post-process", f"{len(nodules)} nodules")

        notes += runner.warnings[runner_notes_before:]
        timings = Timings(
            load=round(load_s, 4),
            backend_setup=round(setup_s, 4),
            lung_region=round(prepared.region.seconds, 4),
            preprocess=round(t_pre, 4),
            model=round(t_model, 4),
            postprocess=round(t_post - t_cand, 4),
            candidates=round(t_cand, 4),
            total=round(time.perf_counter() - t_start, 4),
            slices=n,
            slices_per_s=round(n / t_model, 2) if t_model > 0 else 0.0,
            ms_per_slice=round(1000 * t_model / n, 2) if n else 0.0,
        )
        provenance = self._provenance(ct, runner, thr, prepared, reused, notes, triaged)
        return Segmentation(
            probability, mask, nodules, timings, provenance, prepared, tuple(notes), triaged
        )

    def _provenance(
        self, ct, runner: Runner, thr: float, prepared, reused, notes, triaged=None
    ) -> Provenance:
        from napari_lungkd.models.weights_file import trained_on

        loaded = self.loaded
        return Provenance(
            model=loaded.name,
            encoder=loaded.spec.encoder,
            n_parameters=loaded.n_parameters,
            weights_sha256=loaded.weights_label,
            weights_path=str(loaded.weights_path) if loaded.weights_path else None,
            trained_on=trained_on(loaded.metadata),
            package="napari-lungkd",
            package_version=__version__,
            device=str(runner.device),
            precision=runner.precision,
            backend=self.settings.backend,
            threads=self._threads,
            batch_size=runner.batch_size,
            threshold=thr,
            spec=loaded.spec.to_dict(),
            lung_region={
                **prepared.region.to_dict(),
                "model_pixels_in_ct_slices": round(prepared.pixels_per_ct_slice, 2),
            },
            prepared_reused=reused,
            ct_source=str(getattr(ct, "source", "")),
            series_uid=getattr(ct, "series_uid", None),
            created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            warnings=tuple(notes),
            classifier=None
            if triaged is None
            else {
                "kind": self.classifier.metadata.get("kind"),
                "path": self.classifier.metadata.get("path"),
                "sha256": self.classifier.metadata.get("file_sha256"),
                **triaged.to_dict(),
            },
        )


def segment(
    ct, model="student", device: str = "auto", weights=None, prepared=None, **settings
) -> Segmentation:
    """One call: a :class:`Segmenter` for ``model`` run on ``ct`` to the end.

    ``settings``: the fields of :class:`RunSettings` (``threshold``, ``batch_size``, ``backend``...)."""
    segmenter = Segmenter(model, weights, RunSettings(device=device).with_(**settings))
    return run_to_end(segmenter.iter_segment(ct, prepared))
