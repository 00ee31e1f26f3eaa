"""The LIDC tab's detection scores for one scan, as the field reports them (LUNA16, FROC).

A result's scored candidates (the classifier's candidates and scores when it ran, else each
nodule of the U-Net mask with its highest probability:
:func:`~napari_lungkd.scoring.detections.segmentation_candidates`) are scored against the
references and irrelevant findings of the loaded LIDC annotations
(:func:`~napari_lungkd.scoring.reference.lidc_truth`) by the core's hit rule and FROC
(:func:`~napari_lungkd.scoring.froc.froc`, this one scan, no bootstrap), as ``lungkd evaluate``
scores each case. The FROC does not depend
on the operating point; the hits, misses, false marks and the Dice of the found nodules are
counted at the point shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from napari_lungkd.scoring.froc import fp_rate_label
from napari_lungkd.scoring.reference import POINT_RADIUS_MM

RULE = (
    "LUNA16 rule: a nodule to find is outlined ≥ 3 mm by ≥ 3 readers; a mark on another "
    f"outline or within {POINT_RADIUS_MM:g} mm of a small-nodule or non-nodule mark counts "
    "neither as a hit nor as a false mark"
)


def scan_froc(seg, lidc):
    """The FROC of ``seg``'s candidates (the run's own result) on this one scan against
    ``lidc`` (a LidcMasks on the CT): a :class:`~napari_lungkd.scoring.froc.FrocResult`, scored
    as ``lungkd evaluate`` scores a case."""
    from napari_lungkd.scoring.detections import segmentation_candidates
    from napari_lungkd.scoring.froc import froc
    from napari_lungkd.scoring.reference import lidc_truth

    cands, labels, _point = segmentation_candidates(seg)
    truth = lidc_truth(lidc)
    return froc([truth.case(cands, labels, name=truth.source)], bootstrap=0)


@dataclass(frozen=True)
class DetectionScore:
    """One model's detection scores on this scan, counted at the operating point shown."""

    model: str
    froc: object
    """The :class:`~napari_lungkd.scoring.froc.FrocResult` of this scan."""
    threshold: float
    score_name: str

    @property
    def scan(self):
        return self.froc.scans[0]

    @property
    def references(self) -> int:
        return self.scan.n_references

    @property
    def hits(self) -> int:
        return self.scan.found_at(self.threshold)

    @property
    def misses(self) -> int:
        return self.references - self.hits

    @property
    def false_marks(self) -> int:
        return self.scan.false_positives_at(self.threshold)

    @property
    def dice(self) -> dict:
        return self.froc.dice_summary(self.threshold)

    def rows(self) -> list[dict]:
        """Rows for the LIDC table and its CSV (quantity, model, value, unit)."""
        m = self.model

        def row(quantity, value, unit=""):
            return {"quantity": quantity, "model": m, "value": value, "unit": unit}

        out = [
            row(f"sensitivity at {fp_rate_label(r)} FP/scan", None if s is None else round(s, 4))
            for r, s in zip(self.froc.fp_rates, self.froc.sensitivities)
        ]
        cpm = self.froc.cpm
        out.append(row("CPM (mean sensitivity)", None if cpm is None else round(cpm, 4)))
        out.append(row("operating point", round(self.threshold, 4), self.score_name))
        out.append(row("hits", self.hits))
        out.append(row("misses", self.misses))
        out.append(row("false marks", self.false_marks))
        d = self.dice["mean_dice"]
        out.append(row("Dice of found nodules (mean)", None if d is None else round(d, 4)))
        return out

    def counts_text(self) -> str:
        """One line: the counts and the Dice at the operating point shown."""
        d = self.dice["mean_dice"]
        dice = "–" if d is None else f"{d:.2f}"
        return (
            f"{self.model} at {self.score_name} ≥ {self.threshold:.3f}: "
            f"{_n(self.hits, 'hit')}, {_n(self.misses, 'miss', 'misses')}, "
            f"{_n(self.false_marks, 'false mark')}; Dice of found nodules {dice}"
        )

    def text(self) -> str:
        """Two lines: the counts, then the sensitivities and the CPM."""
        sens = " ".join(_num(s) for s in self.froc.sensitivities)
        rates = " ".join(fp_rate_label(r) for r in self.froc.fp_rates)
        return (
            f"{self.counts_text()}\n"
            f"sensitivity at {rates} FP/scan: {sens} (CPM {_num(self.froc.cpm)})"
        )


def _num(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def _n(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _head(scores: list[DetectionScore]) -> str:
    return f"Detection on this scan, LUNA16 rule ({_n(scores[0].references, 'nodule')} to find)"


def detection_text(scores: list[DetectionScore]) -> str:
    """The detection scores as plain text: the rule once, then two lines per model."""
    if not scores:
        return ""
    head = f"Detection on this scan ({_n(scores[0].references, 'nodule')} to find). {RULE}."
    return "\n".join([head] + [s.text() for s in scores])


def detection_html(scores: list[DetectionScore]) -> str:
    """The LIDC tab's detection paragraph: a table of sensitivity at each false-positive rate
    (and the CPM) per model, then each model's counts at its operating point."""
    from html import escape

    if not scores:
        return ""
    rates = scores[0].froc.fp_rates
    cell = '<td align="right">&nbsp;{}&nbsp;</td>'
    head = "".join(cell.format(f"<b>{fp_rate_label(r)}</b>") for r in rates)
    rows = [f"<tr><td><b>FP/scan</b></td>{head}{cell.format('<b>CPM</b>')}</tr>"]
    for s in scores:
        values = "".join(cell.format(_num(v)) for v in s.froc.sensitivities)
        rows.append(f"<tr><td>{escape(s.model)}</td>{values}{cell.format(_num(s.froc.cpm))}</tr>")
    counts = "<br>".join(escape(s.counts_text()) for s in scores)
    return (
        f"<b>{escape(_head(scores))}</b>: sensitivity at each number of false positives per "
        f'scan<table cellspacing="0" cellpadding="1">{"".join(rows)}</table>{counts}'
    )
