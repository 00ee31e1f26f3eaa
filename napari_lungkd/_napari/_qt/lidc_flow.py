"""LIDC in the dock widget: readers' outlines and consensus as layers, and the models' scores.

The XML is found beside the CT's DICOM files (or opened by the user); the session
(:class:`~napari_lungkd._napari.session.Session`) reads it onto the CT's grid and keeps it; the
agreement level recomputes only the consensus. Scores (Dice vs consensus and vs each reader, the
reader-vs-reader range, per-nodule TP/FP/FN, and the detection scores of the field: FROC of this
scan, hits, misses, false marks at the operating point) come from the session; "Export CSV"
writes them.
"""

from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QFileDialog

from napari_lungkd._napari import result_layers as rl
from napari_lungkd._napari._qt.workers import report_error
from napari_lungkd.errors import LungKDError


class LidcFlow:
    """Wires the LIDC tab to the session's LIDC state and shows it as layers."""

    def __init__(self, widget):
        self.w = widget
        self.session = widget.session
        panel = widget.lidc_panel
        self.session.level = float(panel.level.value())
        panel.open_button.clicked.connect(lambda: self.open())
        panel.level.valueChanged.connect(self.set_level)
        panel.export_button.clicked.connect(lambda: self.export_csv())

    @property
    def xml_path(self) -> Path | None:
        return self.session.xml_path

    # ---- loading -------------------------------------------------------------------------
    def find_for_ct(self) -> None:
        """Load the LIDC XML that sits beside the chosen CT's DICOM files, if there is one."""
        try:
            xml = self.session.find_lidc_xml()
        except Exception as exc:  # noqa: BLE001 - one sentence in the viewer, traceback in the log
            report_error(exc, "finding the LIDC XML")
            return
        if xml is not None:
            self.open(xml, quiet=True)  # the LIDC tab says it; no toast over the image

    def open(self, path=None, quiet: bool = False) -> bool:
        """Read an LIDC XML onto the chosen CT: reader layers, consensus and scores."""
        w, session = self.w, self.session
        ct = session.ct
        if ct is None:
            show_error("Open the CT first: LIDC outlines are placed on the CT's slices.")
            return False
        if path is None:
            start = str(Path(ct.source).parent if ct.source else Path.home())
            path, _ = QFileDialog.getOpenFileName(
                w, "Open LIDC XML", start, "LIDC XML (*.xml *.XML)"
            )
            if not path:
                return False
        from napari_lungkd._napari.lidc_reader import show_lidc

        try:
            lidc = session.load_lidc(path)
            show_lidc(w.viewer, lidc, ct, session.consensus, w.view_panel.fill_check.isChecked())
        except Exception as exc:  # noqa: BLE001 - one sentence, the viewer keeps working
            report_error(exc, f"reading {Path(path).name}")
            return False
        self.show_source()
        self.refresh_scores()
        if not quiet:
            show_info(f"LIDC annotations loaded from {session.xml_path.name}")
        return True

    def show_source(self) -> None:
        """The LIDC tab's line about the current patient's annotations."""
        session, label = self.session, self.w.lidc_panel.source
        lidc = session.lidc
        if lidc is None:
            label.setText("no LIDC annotations loaded")
            return
        n_marked = sum(int(v.any()) for v in session.reader_masks.values())
        label.setText(
            f"{session.xml_path.name}: {lidc.read.n_readers} readers ({n_marked} outlined a "
            f"nodule ≥ 3 mm), {len(lidc.nodules)} nodules"
        )

    def set_level(self, level: float) -> None:
        """A new agreement level: the session recomputes the consensus only; show it, rescore."""
        if self.session.set_level(level):
            self._show_consensus()
            self.refresh_scores()

    def _show_consensus(self) -> None:
        from napari_lungkd._napari.lidc_reader import consensus_metadata

        session = self.session
        layer = rl.find_layer(self.w.viewer, session.ct, rl.LIDC_CONSENSUS)
        if layer is not None:
            layer.data = session.consensus
            layer.metadata.update(consensus_metadata(session.lidc))

    # ---- scores --------------------------------------------------------------------------
    def refresh_scores(self) -> None:
        if self.session.lidc is None:
            return
        try:
            self.session.lidc_comparison(self.w.model_masks())
        except Exception as exc:  # noqa: BLE001
            report_error(exc, "scoring against the LIDC readers")
            return
        self.show_scores()

    def show_scores(self) -> None:
        """The current patient's LIDC scores and detection paragraph, as the session has them."""
        panel = self.w.lidc_panel
        try:
            rows, text = self.session.lidc_rows(), self.session.detection_text(html=True)
        except Exception as exc:  # noqa: BLE001 - one sentence in the viewer, traceback in the log
            report_error(exc, "scoring the detections against the LIDC readers")
            rows, text = [], ""
        panel.show_rows(rows)
        panel.show_detection(text)

    def export_csv(self, path=None) -> Path | None:
        session = self.session
        if session.lidc_scores is None:
            show_error("Nothing to export yet: load LIDC annotations and segment the CT first.")
            return None
        if path is None:
            from napari_lungkd._napari.save_paths import default_mask_path

            start = str(
                default_mask_path(session.ct, "lidc_scores").with_suffix("").with_suffix(".csv")
            )
            path, _ = QFileDialog.getSaveFileName(
                self.w, "Export scores as CSV", start, "CSV (*.csv)"
            )
            if not path:
                return None
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            written = session.write_lidc_scores(path)
        except OSError as exc:
            show_error(f"Cannot write {path}: {exc.strerror or exc}.")
            return None
        except LungKDError as exc:  # a full disk found by the read-back check
            show_error(str(exc))
            return None
        show_info(f"Scores written to {written}")
        return written
