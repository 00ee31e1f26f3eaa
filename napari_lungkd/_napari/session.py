"""The dock widget's application state, with no Qt: the CT, the models, their results, LIDC.

After napari-animation's model/widget split: :class:`Session` holds the state and the rules, the
widget (:mod:`napari_lungkd._napari._qt.widget`) reads its controls, calls one method here and puts
what comes back into layers. Tests drive a Session with no display.

The rules kept here:

- **Results belong to a CT.** Several patients may be open; one is current. :meth:`Session.set_ct`
  with another CT puts the current patient's results and LIDC annotations aside and brings back
  the other's (nothing is recomputed, nothing replaced); a result that arrives for a CT that is not
  current is kept with its own CT (:meth:`Session.add_result` returns False), and dropped only when
  that CT was closed (:meth:`Session.forget_ct`).
- **One Segmenter per model name**, reused across runs and CTs (the weights are read, hashed and the
  model built once); rebuilt only when its weights or run settings (device, engine, threshold,
  batch size) change.
- **The teacher reuses the prepared input** (lung region, normalised slices) of a result already
  on this CT, the student's first.
- **The teacher follows the student.** With the comparison on, the teacher runs once the student's
  result is in (:meth:`Session.follow_up`); a student rerun on the same CT keeps the teacher's
  result (it does not depend on the student) and the comparison is recomputed; turning the
  comparison off drops the teacher's result; a run that ends without a result while the teacher
  was still missing turns the comparison off (:meth:`Session.run_stopped`).
- **The operating point is set after the run.** A result's candidates carry scores (the
  classifier's, else the U-Net's highest probability); :meth:`Session.set_operating_point` shows
  those passing a new point from the run's own result (:mod:`operating_point`), nothing runs
  again; a new run of the model starts again at its own point. A dropped candidate the user
  accepts (:meth:`Session.accept_candidates`) is a nodule added by hand until the model runs again.
- **LIDC** (:class:`~napari_lungkd._napari.session_lidc.LidcState`): a new consensus level
  recomputes only each nodule's consensus, no re-reading, no re-rasterising; the scores against
  the readers include the detection scores of the field (FROC of this scan, hits, false marks).
"""

from __future__ import annotations

from napari_lungkd._napari.session_lidc import LidcState
from napari_lungkd.errors import LungKDError

MODELS = ("student", "teacher")
_PATIENT_STATE = (
    "results",
    "run_results",
    "operating_points",
    "accepted",
    "lidc",
    "xml_path",
    "_reader_masks",
    "_consensus",
    "lidc_scores",
)
"""What belongs to one CT and is kept aside while another patient is shown."""


class NoCtError(LungKDError):
    """An action that needs a CT when none is chosen."""


class Session(LidcState):
    """The widget's state: the chosen CT, a Segmenter per model, results, comparison, LIDC.

    ``weights`` maps a model name to a weights file (or ``"random"``); a model not in it is looked
    up by the core (user folder, bundled weights, registry). ``batch_size`` None: the core's default.
    """

    def __init__(self, weights: dict | None = None, batch_size: int | None = None):
        self.weights: dict[str, object] = dict(weights or {})
        self.batch_size = batch_size
        self.ct = None
        self.ct_layer_name: str | None = None
        self.results: dict[str, object] = {}  # model name -> Segmentation shown, for self.ct
        self.run_results: dict[str, object] = {}  # model name -> the run's own Segmentation
        self.operating_points: dict[str, float] = {}  # model name -> point set after the run
        self.accepted: dict[str, tuple] = {}  # model name -> HandNodules accepted by the user
        self.compare_teacher = False
        self._segmenters: dict[str, object] = {}  # model name -> Segmenter
        self._segmenter_keys: dict[str, tuple] = {}  # model name -> (weights, settings) it has
        self._init_lidc()
        self._kept: dict[int, tuple] = {}  # id(ct) -> (ct, its per-patient state) when not current

    # ---- the CT ----------------------------------------------------------------------------
    def set_ct(self, ct, layer_name: str | None = None) -> bool:
        """Make ``ct`` (from the layer ``layer_name``) current; True when it is another CT.

        The current patient's results and LIDC annotations are kept aside with its CT and come
        back when it is chosen again; the Segmenters are kept."""
        self.ct_layer_name = layer_name if ct is not None else None
        if ct is self.ct:
            return False
        if self.ct is not None:
            self._kept[id(self.ct)] = (self.ct, self._patient_state())
        self.ct = ct
        kept = self._kept.pop(id(ct), None) if ct is not None else None
        if kept is not None and kept[0] is ct:
            self._set_patient_state(kept[1])
        else:
            self._set_patient_state({"results": {}})
        return True

    def _patient_state(self) -> dict:
        return {name: getattr(self, name) for name in _PATIENT_STATE}

    def _set_patient_state(self, state: dict) -> None:
        self.clear_lidc()
        self.results, self.run_results, self.operating_points = {}, {}, {}
        self.accepted = {}
        for name, value in state.items():
            setattr(self, name, value)

    def forget_ct(self, ct) -> None:
        """``ct``'s layer was closed: drop what was kept for it (the current CT included)."""
        self._kept.pop(id(ct), None)
        if ct is not None and ct is self.ct:
            self.ct = None
            self.ct_layer_name = None
            self._set_patient_state({"results": {}})

    def knows(self, ct) -> bool:
        """True for the current CT and every CT whose state is kept aside."""
        return ct is not None and (ct is self.ct or self._kept.get(id(ct), (None,))[0] is ct)

    def results_of(self, ct, what: str = "results") -> dict:
        """Model name -> Segmentation shown of ``ct`` (current or kept aside); empty when unknown.

        ``what``: ``"run_results"`` for the runs' own, ``"operating_points"`` for the points."""
        if ct is not None and ct is self.ct:
            return getattr(self, what)
        kept = self._kept.get(id(ct))
        return kept[1].setdefault(what, {}) if kept is not None and kept[0] is ct else {}

    def _need_ct(self, what: str):
        if self.ct is None:
            raise NoCtError(f"Open a chest CT first (File > Open, or the sample): {what}.")
        return self.ct

    # ---- running a model -------------------------------------------------------------------
    def run_settings(self, device: str = "auto", backend: str = "eager", threshold=None):
        """The frozen RunSettings for the widget's controls (plus this session's batch size)."""
        from napari_lungkd.inference import RunSettings

        return RunSettings(
            device=device,
            backend=backend,
            threshold=None if threshold is None else float(threshold),
            batch_size=self.batch_size,
        )

    def segmenter(self, model: str, settings):
        """The Segmenter for ``model`` with ``settings``: the one already built when its weights and
        settings are the same, else a new one (which replaces it)."""
        from napari_lungkd.inference import Segmenter

        key = (self.weights.get(model), settings)
        if model not in self._segmenters or self._segmenter_keys.get(model) != key:
            self._segmenters.pop(model, None)  # let the old model go before the new one loads
            self._segmenters[model] = Segmenter(model, weights=key[0], settings=settings)
            self._segmenter_keys[model] = key
        return self._segmenters[model]

    def prepared_for(self, model: str):
        """The prepared input of a result already on this CT (the student's first), or None.

        The Segmenter reuses it only when it fits the model's preprocessing."""
        for other in sorted(self.results, key=lambda m: (m != "student", m)):
            prepared = getattr(self.results[other], "prepared", None)
            if other != model and prepared is not None:
                return prepared
        return None

    def iter_segment(self, model: str, device="auto", backend="eager", threshold=None):
        """A Progress generator that segments the current CT with ``model``; it returns
        ``(model, ct, Segmentation)`` for :meth:`add_result`.

        Nothing runs until the generator is driven, so building the Segmenter (reading the
        weights) happens in the worker and its errors are reported there.
        """
        ct = self._need_ct("no CT layer to segment")
        settings = self.run_settings(device, backend, threshold)
        prepared = self.prepared_for(model)

        def run():
            segmenter = self.segmenter(model, settings)
            seg = yield from segmenter.iter_segment(ct, prepared=prepared)
            return model, ct, seg

        return run()

    def add_result(self, model: str, ct, seg) -> bool:
        """Keep ``seg`` as ``model``'s result on ``ct``; True when ``ct`` is the current CT.

        A result for another open patient is kept with that patient (False); one for a CT that
        was closed is dropped (False). A student rerun keeps the teacher's result on the same CT."""
        if not self.knows(ct):
            return False
        self.results_of(ct)[model] = seg
        self.results_of(ct, "run_results")[model] = seg
        self.results_of(ct, "operating_points").pop(model, None)  # a new run: its own point
        self.results_of(ct, "accepted").pop(model, None)  # and none of its candidates accepted
        return ct is self.ct

    def summary(self) -> str:
        """The status line for the current patient: each model's nodule count and speed, the
        student's first (the nodule table shows the student's nodules when it has a result)."""
        from napari_lungkd._napari.layers import patient_label

        if self.ct is None:
            return ""
        parts = []
        for model, seg in self.ordered_results().items():
            n = len(seg.nodules)
            sps = getattr(seg.timings, "slices_per_s", None)
            rate = f" ({sps:.1f} slices/s)" if isinstance(sps, (int, float)) else ""
            parts.append(f"{model} {n} nodule{'s' if n != 1 else ''}{rate}")
        if not parts:
            return f"{patient_label(self.ct)}: not segmented yet"
        return f"done: {patient_label(self.ct)}: " + "; ".join(parts)

    def table_model(self) -> str | None:
        """Whose nodules the table lists: the student's when it has a result, else the teacher's."""
        results = self.ordered_results()
        return next(iter(results), None)

    def follow_up(self) -> str | None:
        """The model to run next: the teacher, when the comparison is on and only it is missing."""
        if self.compare_teacher and "student" in self.results and "teacher" not in self.results:
            return "teacher"
        return None

    def run_stopped(self) -> bool:
        """A run ended without a result (cancelled or failed). With the comparison on and the
        teacher still missing, the comparison is turned off; returns True when it was."""
        if self.compare_teacher and "teacher" not in self.results:
            self.compare_teacher = False
            return True
        return False

    # ---- student vs teacher ----------------------------------------------------------------
    def set_compare(self, on: bool) -> str | None:
        """Turn the teacher comparison on or off; returns the model to run now (or None).

        Off drops the teacher's result. On runs the student first when it has no result on this
        CT (the teacher follows, see :meth:`follow_up`), else the teacher."""
        self.compare_teacher = bool(on)
        if not on:
            for state in (self.results, self.run_results, self.operating_points, self.accepted):
                state.pop("teacher", None)
            return None
        if self.ct is None:
            return None
        if "student" not in self.results:
            return "student"
        return self.follow_up()

    def ordered_results(self) -> dict:
        """The results, student before teacher."""
        return {m: self.results[m] for m in MODELS if m in self.results}

    def model_comparison(self, masks: dict | None = None):
        """Student vs teacher numbers (:func:`~napari_lungkd.scoring.comparison.compare_models`),
        or None with no result. ``masks``: model name -> the mask as shown (with the user's
        edits), else the results' own."""
        from napari_lungkd.scoring.comparison import compare_models

        ordered = self.ordered_results()
        return compare_models(ordered, masks=masks) if ordered else None

    def rescore(self, masks: dict) -> tuple:
        """Recompute every score with the masks as shown now (after edits): (student vs teacher
        comparison or None, LIDC comparison or None)."""
        return self.model_comparison(masks), self.lidc_comparison(masks)

    @staticmethod
    def disagreement(masks: dict):
        """Student-only / teacher-only labels of the masks as shown, or None without both."""
        from napari_lungkd.scoring.comparison import disagreement_labels

        if "student" not in masks or "teacher" not in masks:
            return None
        return disagreement_labels(masks["student"], masks["teacher"])

    # ---- the operating point, after the run --------------------------------------------------
    def candidate_scores(self, model: str, ct=None):
        """Every candidate of ``model``'s run on ``ct`` (default: the current CT) with its score
        (:class:`~napari_lungkd._napari.operating_point.CandidateScores`), or None."""
        from napari_lungkd._napari.operating_point import candidate_scores

        own = self.results_of(self.ct if ct is None else ct, "run_results").get(model)
        return None if own is None else candidate_scores(own)

    def operating_point(self, model: str, ct=None) -> float | None:
        """The point ``model``'s nodules are shown at: the one set, else the run's own."""
        ct = self.ct if ct is None else ct
        point = self.results_of(ct, "operating_points").get(model)
        if point is not None:
            return point
        scores = self.candidate_scores(model, ct)
        return None if scores is None else scores.default

    def expected_at(self, model: str, threshold: float) -> dict | None:
        """The held-out numbers (false positives per scan, sensitivity) of ``model``'s classifier
        nearest ``threshold``; None without a classifier or when it is not the one that ran."""
        from napari_lungkd.inference.fp_reduction import nearest_operating_point

        classifier = self._classifier_of(model)
        return None if classifier is None else nearest_operating_point(classifier, threshold)

    def _classifier_of(self, model: str):
        own = self.run_results.get(model)
        segmenter = self._segmenters.get(model)
        if own is None or own.triage is None or segmenter is None:
            return None
        classifier = segmenter.classifier
        ran = (own.provenance.classifier or {}).get("sha256")
        same = classifier is not None and classifier.metadata.get("file_sha256") == ran
        return classifier if same else None

    def set_operating_point(self, model: str, threshold: float):
        """Show ``model``'s candidates scoring at least ``threshold`` (clamped to what its scores
        allow) as its nodules, from its run's own result; the new Segmentation shown, or None
        when nothing changed. Raises NoCtError / LungKDError without a result."""
        from napari_lungkd._napari.accept_candidate import with_hand_nodules
        from napari_lungkd._napari.operating_point import at_operating_point

        ct = self._need_ct("no CT to show nodules on")
        own = self.run_results.get(model)
        if own is None:
            raise LungKDError(f"Segment the CT with the {model} first: it has no nodules to show.")
        point = self.candidate_scores(model).clamp(threshold)
        if point == self.operating_point(model):
            return None
        seg = at_operating_point(own, point, ct, self._classifier_of(model))
        kept = self.candidate_scores(model).kept(point)
        seg = with_hand_nodules(seg, own, self.accepted.get(model, ()), kept)
        self.results[model] = seg
        self.operating_points[model] = point
        return seg

    def shown_provenance(self, model: str, ct=None) -> dict:
        """The provenance of ``model``'s result shown on ``ct``, with the point it is shown at."""
        from napari_lungkd._napari.accept_candidate import hand_provenance
        from napari_lungkd._napari.operating_point import shown_provenance

        ct = self.ct if ct is None else ct
        seg = self.results_of(ct)[model]
        prov = shown_provenance(
            seg, self.candidate_scores(model, ct), self.operating_point(model, ct)
        )
        hand = hand_provenance(seg)
        if hand:
            prov["added_by_hand"] = hand
        return prov

    def accept_candidates(self, model: str, indices):
        """Add ``model``'s candidates ``indices`` (the candidates layer's order) that the
        operating point drops as new nodules, added by hand (:mod:`accept_candidate`); they
        stay when the point moves, until the model runs again. The new Segmentation shown, or
        None when each is a nodule already. Raises NoCtError / LungKDError without a result."""
        from napari_lungkd._napari.accept_candidate import accept

        ct = self._need_ct("no CT to add a nodule to")
        own = self.run_results.get(model)
        if own is None:
            raise LungKDError(f"Segment the CT with the {model} first: it has no candidates.")
        kept = self.candidate_scores(model).kept(self.operating_point(model))
        hand, seg = accept(
            self.results[model], own, self.accepted.get(model, ()), indices, kept, ct
        )
        if seg is not None:
            self.accepted[model], self.results[model] = hand, seg
        return seg
