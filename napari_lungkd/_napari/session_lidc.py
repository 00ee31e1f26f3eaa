"""The LIDC part of the dock widget's Session: the readers' annotations on the current CT and
every score against them (no Qt).

:class:`LidcState` is mixed into :class:`~napari_lungkd._napari.session.Session`; it keeps the
annotations on the CT's grid at the current consensus level (a new level recomputes only each
nodule's consensus: :meth:`napari_lungkd.lidc.masks.LidcMasks.at_level`), the segmentation scores
against the consensus and the readers, and the detection scores as the field reports them (the
LUNA16 hit rule and the FROC of this scan, :mod:`~napari_lungkd._napari.lidc_detection`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_lungkd.errors import LungKDError

DEFAULT_LEVEL = 0.5
SPEED_ROWS = ("parameters", "time per CT", "model speed", "speed-up")
"""Comparison rows about speed and size: shown in the Compare tab, not among the LIDC scores."""


class LidcState:
    """LIDC annotations of the current CT and the scores against them (mixed into Session)."""

    def _init_lidc(self) -> None:
        self.lidc = None  # LidcMasks on self.ct's grid, at self.level
        self.xml_path: Path | None = None
        self.level = DEFAULT_LEVEL
        self._reader_masks: dict[str, np.ndarray] = {}
        self._consensus: np.ndarray | None = None
        self.lidc_scores = None  # the last ModelComparison against the LIDC readers
        self._froc_cache: dict[str, tuple] = {}  # model -> (its run's result, lidc, FrocResult)

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
        self._froc_cache = {}

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
        """The LIDC score rows to show (no speed or size rows), then the detection scores."""
        if self.lidc_scores is None:
            return []
        rows = [r for r in self.lidc_scores.rows() if r["quantity"] not in SPEED_ROWS]
        return rows + [r for s in self.detection_scores() for r in s.rows()]

    # ---- detection scores (LUNA16 hit rule, FROC of this scan) -----------------------------
    def detection_scores(self) -> list:
        """Each model's :class:`~napari_lungkd._napari.lidc_detection.DetectionScore` on the
        current CT against the loaded LIDC annotations, at its operating point shown (empty
        without LIDC). The FROC of a result is computed once per result and consensus level."""
        from napari_lungkd._napari.lidc_detection import DetectionScore, scan_froc

        if self.lidc is None:
            return []
        out = []
        for model in self.ordered_results():
            own = self.run_results.get(model, self.results[model])
            cached = self._froc_cache.get(model)
            if cached is None or cached[0] is not own or cached[1] is not self.lidc:
                cached = (own, self.lidc, scan_froc(own, self.lidc))
                self._froc_cache[model] = cached
            scores = self.candidate_scores(model)
            t = self.operating_point(model)
            out.append(DetectionScore(model, cached[2], t, scores.score_name))
        return out

    def detection_text(self, html: bool = False) -> str:
        """The detection scores as text (``html``: as the LIDC tab shows them); empty without
        LIDC or a result."""
        from napari_lungkd._napari.lidc_detection import detection_html, detection_text

        return (detection_html if html else detection_text)(self.detection_scores())

    def write_lidc_scores(self, path) -> Path:
        """Write the last LIDC scores and the detection scores as CSV (each row with the XML
        name and the level)."""
        from napari_lungkd.files import atomic_write_bytes
        from napari_lungkd.scoring.comparison import rows_to_csv

        if self.lidc_scores is None:
            raise LungKDError(
                "Nothing to export yet: load LIDC annotations and segment the CT first."
            )
        rows = self.lidc_scores.rows() + [r for s in self.detection_scores() for r in s.rows()]
        for row in rows:
            row["xml"] = self.xml_path.name if self.xml_path else ""
            row["level"] = self.level
        atomic_write_bytes(path, rows_to_csv(rows).encode())
        return Path(path)
