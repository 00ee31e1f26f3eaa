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
- **LIDC consensus level.** A new level recomputes only each nodule's consensus
  (:meth:`napari_lungkd.lidc.masks.LidcMasks.at_level`): no re-reading, no re-rasterising.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_lungkd.errors import LungKDError

MODELS = ("student", "teacher")
_PATIENT_STATE = ("results", "lidc", "xml_path", "_reader_masks", "_consensus", "lidc_scores")
"""What belongs to one CT and is kept aside while another patient is shown."""
DEFAULT_LEVEL = 0.5
SPEED_ROWS = ("parameters", "time per CT", "model speed", "speed-up")
"""Comparison rows about speed and size: shown in the Compare tab, not among the LIDC scores."""


class NoCtError(LungKDError):
    """An action that needs a CT when none is chosen."""


class Session:
    """The widget's state: the chosen CT, a Segmenter per model, results, comparison, LIDC.

    ``weights`` maps a model name to a weights file (or ``"random"``); a model not in it is looked
    up by the core (user folder, bundled weights, registry). ``batch_size`` None: the core's default.
    """

    def __init__(self, weights: dict | None = None, batch_size: int | None = None):
        self.weights: dict[str, object] = dict(weights or {})
        self.batch_size = batch_size
        self.ct = None
        self.ct_layer_name: str | None = None
        self.results: dict[str, object] = {}  # model name -> Segmentation, for self.ct
        self.compare_teacher = False
        self._segmenters: dict[str, object] = {}  # model name -> Segmenter
        self._segmenter_keys: dict[str, tuple] = {}  # model name -> (weights, settings) it has
        self.lidc = None  # LidcMasks on self.ct's grid, at self.level
        self.xml_path: Path | None = None
        self.level = DEFAULT_LEVEL
        self._reader_masks: dict[str, np.ndarray] = {}
        self._consensus: np.ndarray | None = None
        self.lidc_scores = None  # the last ModelComparison against the LIDC readers
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
        self.results = {}
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

    def results_of(self, ct) -> dict:
        """Model name -> Segmentation of ``ct`` (current or kept aside); empty when unknown."""
        if ct is not None and ct is self.ct:
            return self.results
        kept = self._kept.get(id(ct))
        return kept[1]["results"] if kept is not None and kept[0] is ct else {}

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
            self.results.pop("teacher", None)
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

    # ---- LIDC --------------------------------------------------------------------------------
    def find_lidc_xml(self) -> Path | None:
        """The LIDC XML beside the current CT's DICOM files (the core's choice), or None."""
        from napari_lungkd.lidc import find_lidc_xml

        ct = self.ct
        if ct is None or not ct.sop_uids or not ct.source:
            return None
        src = Path(ct.source)
        folders = [ct.metadata.get("series_folder"), src if src.is_dir() else src.parent]
        for folder in dict.fromkeys(Path(f) for f in folders if f):  # the series folder first
            found = find_lidc_xml(folder, ct.series_uid)
            if found is not None:
                return found
        return None

    def load_lidc(self, path):
        """Read the LIDC XML at ``path`` onto the current CT at the current level; the LidcMasks.

        Bad input raises (LidcXmlError, one sentence) and leaves the annotations as they were."""
        from napari_lungkd.lidc import annotate, read_lidc_xml

        ct = self._need_ct("LIDC outlines are placed on the CT's slices")
        lidc = annotate(read_lidc_xml(path), ct=ct, level=self.level)
        self.clear_lidc()
        self.lidc, self.xml_path = lidc, Path(path)
        self._reader_masks = {str(r + 1): v for r, v in enumerate(lidc.reader_volumes())}
        return lidc

    def clear_lidc(self) -> None:
        self.lidc, self.xml_path = None, None
        self._reader_masks, self._consensus, self.lidc_scores = {}, None, None

    def set_level(self, level: float) -> bool:
        """A new consensus agreement level; True when the loaded annotations' consensus changed
        (recomputed from the kept annotation masks only)."""
        self.level = float(level)
        if self.lidc is None or self.lidc.level == self.level:
            return False
        self.lidc = self.lidc.at_level(self.level)
        self._consensus = None
        return True

    @property
    def reader_masks(self) -> dict[str, np.ndarray]:
        """Reader number (from "1") -> uint8 mask of what that reader outlined."""
        return self._reader_masks

    @property
    def consensus(self) -> np.ndarray | None:
        """uint16 consensus labels at the current level (nodule ``i`` -> ``i + 1``), or None."""
        if self.lidc is not None and self._consensus is None:
            self._consensus = self.lidc.consensus_labels()
        return self._consensus

    def lidc_comparison(self, masks: dict | None = None):
        """Each model's scores against the consensus and the readers (None without LIDC).

        ``masks``: model name -> the mask as shown (with the user's edits), else the results'."""
        from napari_lungkd.scoring.comparison import compare_models

        if self.lidc is None:
            return None
        segs = self.ordered_results()
        if segs:
            comp = compare_models(
                segs,
                consensus=self.consensus,
                reader_masks=self._reader_masks,
                spacing_mm=self.ct.spacing_mm,
                masks=masks,
            )
        else:
            comp = compare_models({}, reader_masks=self._reader_masks)
        self.lidc_scores = comp
        return comp

    def lidc_rows(self) -> list[dict]:
        """The LIDC score rows to show (no speed or size rows)."""
        if self.lidc_scores is None:
            return []
        return [r for r in self.lidc_scores.rows() if r["quantity"] not in SPEED_ROWS]

    def write_lidc_scores(self, path) -> Path:
        """Write the last LIDC scores as CSV (each row with the XML name and the level)."""
        from napari_lungkd.files import atomic_write_bytes
        from napari_lungkd.scoring.comparison import rows_to_csv

        if self.lidc_scores is None:
            raise LungKDError(
                "Nothing to export yet: load LIDC annotations and segment the CT first."
            )
        rows = self.lidc_scores.rows()
        for row in rows:
            row["xml"] = self.xml_path.name if self.xml_path else ""
            row["level"] = self.level
        atomic_write_bytes(path, rows_to_csv(rows).encode())
        return Path(path)
