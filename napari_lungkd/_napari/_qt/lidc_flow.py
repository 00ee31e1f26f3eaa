"""LIDC in the dock widget: readers' outlines and consensus as layers, and the models' scores.

The XML is found beside the CT's DICOM files (or opened by the user); the session
(:class:`~napari_lungkd._napari.session.Session`) reads it onto the CT's grid and keeps it; the
agreement level recomputes only the consensus. Scores (Dice vs consensus and vs each reader, the
reader-vs-reader range, per-nodule TP/FP/FN) come from the session; "Export CSV" writes them.
"""

from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QFileDialog

from napari_lungkd._napari import result_layers as rl
from napari_lungkd._napari._qt.workers import report_error

READER_COLOURS = (
    "#4da6ff",
    "#ff8c1a",
    "#66ff66",
    "#ff4d4d",
    "#c080ff",
    "#ffd9b3",
    "#80ffff",
    "#ff80c0",
)
CONSENSUS_COLOUR = "#00ff7f"
CONSENSUS_NAME = "LIDC consensus"


def reader_layer_name(reader: int) -> str:
    return f"LIDC reader {reader + 1}"


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
            self.open(xml)

    def open(self, path=None) -> bool:
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
        from napari_lungkd._napari.lidc_reader import layers_on_ct

        try:
            lidc = session.load_lidc(path)
            tuples = layers_on_ct(lidc, ct, session.consensus)
        except Exception as exc:  # noqa: BLE001 - one sentence, the viewer keeps working
            report_error(exc, f"reading {Path(path).name}")
            return False
        self._clear_layers()
        vols = list(session.reader_masks.values())
        for r, ((_, kwargs, _), vol) in enumerate(zip(tuples[:-1], vols)):
            kwargs = dict(kwargs)
            kwargs.update(
                name=reader_layer_name(r),
                colormap=rl.labels_colormap({1: READER_COLOURS[r % len(READER_COLOURS)]}),
                opacity=1.0,
            )
            layer = w.viewer.add_labels(vol, **kwargs)
            layer.contour = 1  # outlines, so readers and consensus stay readable on each other
        self._show_consensus(tuples[-1][1])
        n_marked = sum(int(v.any()) for v in vols)
        w.lidc_panel.source.setText(
            f"{session.xml_path.name}: {lidc.read.n_readers} readers ({n_marked} outlined a "
            f"nodule ≥ 3 mm), {len(lidc.nodules)} nodules"
        )
        self.refresh_scores()
        show_info(f"LIDC annotations loaded from {session.xml_path.name}")
        return True

    def _clear_layers(self) -> None:
        viewer = self.w.viewer
        names = [
            layer.name
            for layer in viewer.layers
            if layer.metadata.get("lungkd_role") in ("lidc reader", "lidc consensus")
        ]
        rl.remove_layers(viewer, names)

    def set_level(self, level: float) -> None:
        """A new agreement level: the session recomputes the consensus only; show it, rescore."""
        if self.session.set_level(level):
            self._show_consensus()
            self.refresh_scores()

    def _show_consensus(self, kwargs: dict | None = None) -> None:
        from napari_lungkd._napari.lidc_reader import consensus_metadata

        session, viewer = self.session, self.w.viewer
        consensus = session.consensus
        if CONSENSUS_NAME in viewer.layers:
            layer = viewer.layers[CONSENSUS_NAME]
            layer.data = consensus
            layer.metadata.update(consensus_metadata(session.lidc))
            return
        kwargs = dict(kwargs or {})
        n = int(consensus.max()) if consensus.size else 0
        kwargs.update(
            name=CONSENSUS_NAME,
            colormap=rl.labels_colormap({i: CONSENSUS_COLOUR for i in range(1, max(n, 1) + 64)}),
            opacity=0.4,
        )
        layer = viewer.add_labels(consensus, **kwargs)
        # filled consensus under the readers' outlines, so every outline stays visible
        readers = [
            i
            for i, lyr in enumerate(viewer.layers)
            if lyr.metadata.get("lungkd_role") == "lidc reader"
        ]
        if readers:
            viewer.layers.move(viewer.layers.index(layer), min(readers))

    # ---- scores --------------------------------------------------------------------------
    def refresh_scores(self) -> None:
        if self.session.lidc is None:
            return
        try:
            self.session.lidc_comparison(self.w.model_masks())
        except Exception as exc:  # noqa: BLE001
            report_error(exc, "scoring against the LIDC readers")
            return
        self.w.lidc_panel.show_rows(self.session.lidc_rows())

    def export_csv(self, path=None) -> Path | None:
        session = self.session
        if session.lidc_scores is None:
            show_error("Nothing to export yet: load LIDC annotations and segment the CT first.")
            return None
        if path is None:
            start = str(Path(session.ct.source).parent / "lidc_scores.csv")
            path, _ = QFileDialog.getSaveFileName(
                self.w, "Export scores as CSV", start, "CSV (*.csv)"
            )
            if not path:
                return None
        try:
            written = session.write_lidc_scores(path)
        except OSError as exc:
            show_error(f"Cannot write {path}: {exc.strerror or exc}.")
            return None
        show_info(f"Scores written to {written}")
        return written
