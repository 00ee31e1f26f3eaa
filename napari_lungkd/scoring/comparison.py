"""Student-versus-teacher comparison: the numbers the widget's comparison and LIDC panels show.

Pure functions on arrays and :class:`~napari_lungkd.inference.segmenter.Segmentation` results; no Qt, no
torch. The widget calls :func:`compare_models` and :func:`disagreement_labels`, then shows
:meth:`Comparison.rows` (also what "Export CSV" writes).

* speed: parameters, seconds per CT, slices per second, and the teacher/student speed-up
  (:func:`napari_lungkd.scoring.speed.speedup`: model seconds per slice);
* agreement: Dice student <-> teacher;
* against LIDC (when a consensus and/or per-reader masks are given): each model's Dice against the
  consensus and against every reader, the reader-vs-reader Dice range (the human ceiling a model is
  compared to), and per-nodule TP/FP/FN against the consensus nodules;
* :func:`edit_summary`: voxels a human added to / removed from the model's mask.

Dice uses :func:`napari_lungkd.scoring.metrics.dice` (empty vs empty is defined there).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_lungkd.scoring import metrics
from napari_lungkd.scoring.speed import speedup

if TYPE_CHECKING:
    from napari_lungkd.inference.segmentation import Timings

STUDENT_ONLY = 1
TEACHER_ONLY = 2


@dataclass(frozen=True)
class ModelStats:
    """Speed facts of one model's run on one CT."""

    name: str
    n_params: int | None
    seconds: float | None
    """Seconds for the whole CT, end to end (``timings.total`` of the segmentation)."""
    n_slices: int
    """Slices the model ran on (those with lung)."""
    slices_per_s: float | None
    """Model throughput (``timings.slices_per_s``)."""
    device: str = ""
    timings: Timings | None = None
    """The segmentation's timings, from which the speed-up is computed."""

    @classmethod
    def from_segmentation(cls, name: str, seg: Any, n_params: int | None = None) -> ModelStats:
        """Read the :class:`~napari_lungkd.inference.segmentation.Timings` and
        :class:`~napari_lungkd.inference.segmentation.Provenance` of a Segmentation."""
        timings, prov = seg.timings, seg.provenance
        if n_params is None:
            n_params = prov.n_parameters
        return cls(
            name=name,
            n_params=None if n_params is None else int(n_params),
            seconds=float(timings.total),
            n_slices=int(timings.slices),
            slices_per_s=float(timings.slices_per_s),
            device=str(prov.device),
            timings=timings,
        )


@dataclass(frozen=True)
class LesionCounts:
    """Per-nodule detection counts of one model against the reference nodules."""

    tp: int
    fp: int
    fn: int

    @property
    def sensitivity(self) -> float | None:
        return None if self.tp + self.fn == 0 else self.tp / (self.tp + self.fn)


@dataclass(frozen=True)
class Comparison:
    """Everything the comparison panel shows, for one CT."""

    models: tuple[ModelStats, ...]
    dice_between: float | None
    """Dice between the first two models' masks (student <-> teacher); None with one model."""
    dice_vs_consensus: dict[str, float] = field(default_factory=dict)
    dice_vs_readers: dict[str, dict[str, float]] = field(default_factory=dict)
    reader_dice: dict[tuple[str, str], float] = field(default_factory=dict)
    """Dice of every pair of readers (the inter-observer agreement)."""
    lesions: dict[str, LesionCounts] = field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        """How many times faster the first model (student) ran than the second (teacher):
        :func:`napari_lungkd.scoring.speed.speedup` (model seconds per slice)."""
        if len(self.models) < 2:
            return None
        student, teacher = self.models[0].timings, self.models[1].timings
        return None if student is None or teacher is None else speedup(teacher, student)

    @property
    def human_ceiling(self) -> tuple[float, float] | None:
        """(lowest, highest) reader-vs-reader Dice; None with fewer than two readers."""
        if not self.reader_dice:
            return None
        values = list(self.reader_dice.values())
        return (min(values), max(values))

    def rows(self) -> list[dict[str, Any]]:
        """One row per (quantity, model) — the table shown in the panel and written as CSV."""
        rows: list[dict[str, Any]] = []

        def add(quantity: str, model: str, value: Any, unit: str = "") -> None:
            rows.append({"quantity": quantity, "model": model, "value": value, "unit": unit})

        for m in self.models:
            add("parameters", m.name, m.n_params)
            add("time per CT", m.name, _round(m.seconds, 2), "s")
            add("model speed", m.name, _round(m.slices_per_s, 1), "slices/s")
        if self.speedup is not None:
            add(
                "speed-up",
                f"{self.models[0].name} vs {self.models[1].name}",
                _round(self.speedup, 2),
                "x",
            )
        if self.dice_between is not None:
            add(
                "Dice",
                f"{self.models[0].name} vs {self.models[1].name}",
                _round(self.dice_between, 4),
            )
        for name, d in self.dice_vs_consensus.items():
            add("Dice vs consensus", name, _round(d, 4))
        for name, per_reader in self.dice_vs_readers.items():
            for reader, d in per_reader.items():
                add(f"Dice vs reader {reader}", name, _round(d, 4))
        ceiling = self.human_ceiling
        if ceiling is not None:
            add("reader vs reader Dice (min)", "readers", _round(ceiling[0], 4))
            add("reader vs reader Dice (max)", "readers", _round(ceiling[1], 4))
        for name, c in self.lesions.items():
            add("nodules TP", name, c.tp)
            add("nodules FP", name, c.fp)
            add("nodules FN", name, c.fn)
        return rows


def compare_models(
    segmentations: Mapping[str, Any],
    consensus: np.ndarray | None = None,
    reader_masks: Mapping[str, np.ndarray] | None = None,
    spacing_mm: Sequence[float] | None = None,
    n_params: Mapping[str, int] | None = None,
    masks: Mapping[str, np.ndarray] | None = None,
) -> Comparison:
    """Compare models' segmentations of one CT with each other and with the LIDC readers.

    ``segmentations`` maps a model name to its Segmentation, in order (student first, then
    teacher). ``masks`` may replace a model's mask (e.g. the user's corrected one) for the Dice
    numbers; ``consensus`` is the LIDC consensus mask and ``reader_masks`` one mask per reader, on
    the CT's grid. ``spacing_mm`` (z, y, x) is needed for per-nodule matching.
    """
    n_params = dict(n_params or {})
    masks = dict(masks or {})
    names = list(segmentations)
    stats = tuple(ModelStats.from_segmentation(n, segmentations[n], n_params.get(n)) for n in names)
    model_masks = {n: np.asarray(masks.get(n, segmentations[n].mask)) > 0 for n in names}
    shape = next(iter(model_masks.values())).shape if model_masks else None
    for n, m in model_masks.items():
        if m.shape != shape:
            raise ValueError(f"mask of {n} has shape {m.shape}, expected {shape}")

    dice_between = None
    if len(names) >= 2:
        dice_between = float(metrics.dice(model_masks[names[0]], model_masks[names[1]]))

    dice_cons: dict[str, float] = {}
    lesions: dict[str, LesionCounts] = {}
    if consensus is not None:
        consensus = np.asarray(consensus)
        _check_shape("consensus", consensus, shape)
        for n in names:
            dice_cons[n] = float(metrics.dice(model_masks[n], consensus > 0))
            if spacing_mm is not None:
                lesions[n] = lesion_counts(model_masks[n], consensus, spacing_mm)

    dice_readers: dict[str, dict[str, float]] = {}
    reader_dice: dict[tuple[str, str], float] = {}
    if reader_masks:
        readers = {str(k): np.asarray(v) > 0 for k, v in reader_masks.items()}
        for r, m in readers.items():
            _check_shape(f"reader {r}", m, shape)
        for n in names:
            dice_readers[n] = {
                r: float(metrics.dice(model_masks[n], m)) for r, m in readers.items()
            }
        reader_dice = reader_pair_dice(readers)

    return Comparison(
        models=stats,
        dice_between=dice_between,
        dice_vs_consensus=dice_cons,
        dice_vs_readers=dice_readers,
        reader_dice=reader_dice,
        lesions=lesions,
    )


def reader_pair_dice(reader_masks: Mapping[str, np.ndarray]) -> dict[tuple[str, str], float]:
    """Dice of every pair of readers' masks (the inter-observer agreement, the human ceiling);
    pairs where both readers outlined nothing carry no information and are left out
    (:func:`napari_lungkd.scoring.metrics.reader_vs_reader_dice`)."""
    names = [str(k) for k in reader_masks]
    agreement = metrics.reader_vs_reader_dice([np.asarray(v) for v in reader_masks.values()])
    return {(names[i], names[j]): float(d) for (i, j), d in agreement.pairs.items()}


def lesion_counts(pred_mask: np.ndarray, reference: np.ndarray, spacing_mm) -> LesionCounts:
    """Per-nodule TP/FP/FN of ``pred_mask`` against the reference nodules (consensus components)."""
    result = metrics.match_lesions(np.asarray(pred_mask) > 0, np.asarray(reference), spacing_mm)
    return LesionCounts(
        tp=int(_get(result, "tp")), fp=int(_get(result, "fp")), fn=int(_get(result, "fn"))
    )


def disagreement_labels(student_mask: np.ndarray, teacher_mask: np.ndarray) -> np.ndarray:
    """uint8 labels: 1 where only the student marks a voxel, 2 where only the teacher does, else 0."""
    s = np.asarray(student_mask) > 0
    t = np.asarray(teacher_mask) > 0
    if s.shape != t.shape:
        raise ValueError(f"student mask {s.shape} and teacher mask {t.shape} differ in shape")
    out = np.zeros(s.shape, dtype=np.uint8)
    out[s & ~t] = STUDENT_ONLY
    out[t & ~s] = TEACHER_ONLY
    return out


def edit_summary(model_mask: np.ndarray, edited_mask: np.ndarray) -> dict[str, int]:
    """Voxels added and removed by hand: ``edited_mask`` compared with the model's own mask."""
    m = np.asarray(model_mask) > 0
    e = np.asarray(edited_mask) > 0
    if m.shape != e.shape:
        raise ValueError(f"model mask {m.shape} and edited mask {e.shape} differ in shape")
    added = int(np.count_nonzero(e & ~m))
    removed = int(np.count_nonzero(m & ~e))
    return {
        "voxels_added": added,
        "voxels_removed": removed,
        "voxels_model": int(np.count_nonzero(m)),
        "voxels_edited": int(np.count_nonzero(e)),
    }


def rows_to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV text of :meth:`Comparison.rows` (header from the first row's keys)."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def _check_shape(what: str, arr: np.ndarray, shape) -> None:
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{what} has shape {arr.shape}, expected the CT's {shape}")


def _get(result: Any, key: str):
    if isinstance(result, Mapping):
        return result[key]
    return getattr(result, key)


def _round(v: float | None, nd: int) -> float | None:
    return None if v is None else round(float(v), nd)
