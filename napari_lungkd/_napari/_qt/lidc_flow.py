"""LIDC in the dock widget: readers' outlines and consensus as layers, and the models' scores.

The XML is found beside the CT's DICOM files (or opened by the user), rasterised on the CT's grid
and clustered into nodules by the core (:mod:`napari_lungkd.lidc.masks`); the agreement level rebuilds
the consensus. Scores (Dice vs consensus and vs each reader, the reader-vs-reader range, per-nodule
TP/FP/FN) come from :func:`napari_lungkd.scoring.comparison.compare_models`; "Export CSV" writes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QFileDialog

from napari_lungkd._napari import result_layers as rl
from napari_lungkd._napari._qt.workers import describe_error

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


def find_xml_for_ct(ct) -> Path | None:
    """The LIDC XML in the CT's DICOM folder (the core's choice when there are several)."""
    from napari_lungkd.lidc import find_lidc_xml

    if not ct.sop_uids or not ct.source:
        return None
    src = Path(ct.source)
    return find_lidc_xml(src if src.is_dir() else src.parent, ct.series_uid)


class LidcFlow:
    def __init__(self, widget):
        self.w = widget
        self.xml_path: Path | None = None
        self.ct = None
        self.read = None
        self.nodules: list[dict] = []  # the consensus nodules (LIDC Nodule.to_dict()) at the level
        self.reader_masks: dict[str, np.ndarray] = {}
        self.consensus: np.ndarray | None = None
        self.comparison = None
        panel = widget.lidc_panel
        panel.open_button.clicked.connect(lambda: self.open())
        panel.level.valueChanged.connect(lambda _v: self.rebuild_consensus())
        panel.export_button.clicked.connect(lambda: self.export_csv())

    # ---- loading -------------------------------------------------------------------------
    def find_for_ct(self, ct) -> None:
        """Load the LIDC XML that sits beside the CT's DICOM files, if there is one."""
        if ct is self.ct:
            return
        try:
            xml = find_xml_for_ct(ct)
        except Exception as exc:  # noqa: BLE001
            show_error(describe_error(exc))
            return
        if xml is not None:
            self.open(xml)

    def open(self, path=None) -> bool:
        """Read an LIDC XML onto the chosen CT: reader layers, consensus and scores."""
        w = self.w
        ct = w.ct()
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
        from napari_lungkd._napari.lidc_reader import lidc_layers_for_ct
        from napari_lungkd.lidc import read_lidc_xml

        try:
            read = read_lidc_xml(path)
            tuples = lidc_layers_for_ct(ct, read, level=float(w.lidc_panel.level.value()))
        except Exception as exc:  # noqa: BLE001 - one sentence, the viewer keeps working
            show_error(describe_error(exc))
            return False
        self.xml_path, self.ct, self.read = Path(path), ct, read
        self._clear_layers()
        n_readers = read.n_readers
        vols = [(np.asarray(data) > 0).astype(np.uint8) for data, _, _ in tuples[:-1]]
        self.reader_masks = {str(r + 1): v for r, v in enumerate(vols)}
        for r, ((_, kwargs, _), vol) in enumerate(zip(tuples[:-1], vols)):
            kwargs = dict(kwargs)
            kwargs.update(
                name=reader_layer_name(r),
                colormap=rl.labels_colormap({1: READER_COLOURS[r % len(READER_COLOURS)]}),
                opacity=1.0,
            )
            layer = w.viewer.add_labels(vol, **kwargs)
            layer.contour = (
                1  # outlines, so readers and consensus stay readable on top of each other
            )
        self._show_consensus(tuples[-1])
        n_marked = sum(int(v.any()) for v in vols)
        w.lidc_panel.source.setText(
            f"{self.xml_path.name}: {n_readers} readers ({n_marked} outlined a nodule ≥ 3 mm), "
            f"{len(self.nodules)} nodules"
        )
        self.refresh_scores()
        show_info(f"LIDC annotations loaded from {self.xml_path.name}")
        return True

    def _clear_layers(self) -> None:
        viewer = self.w.viewer
        names = [
            layer.name
            for layer in viewer.layers
            if layer.metadata.get("lungkd_role") in ("lidc reader", "lidc consensus")
        ]
        rl.remove_layers(viewer, names)

    def rebuild_consensus(self) -> None:
        """Consensus at the panel's agreement level, as a layer; then the scores."""
        from napari_lungkd._napari.lidc_reader import lidc_layers_for_ct

        if self.read is None:
            return
        try:
            tuples = lidc_layers_for_ct(
                self.ct, self.read, level=float(self.w.lidc_panel.level.value())
            )
        except Exception as exc:  # noqa: BLE001
            show_error(describe_error(exc))
            return
        self._show_consensus(tuples[-1])
        self.refresh_scores()

    def _show_consensus(self, layer_tuple) -> None:
        data, kwargs, _ = layer_tuple
        self.consensus = np.asarray(data)
        self.nodules = list(kwargs.get("metadata", {}).get("lungkd_nodules", []))
        viewer = self.w.viewer
        if CONSENSUS_NAME in viewer.layers:
            layer = viewer.layers[CONSENSUS_NAME]
            layer.data = self.consensus
            layer.metadata.update(kwargs.get("metadata", {}))
            return
        kwargs = dict(kwargs)
        n = int(self.consensus.max()) if self.consensus.size else 0
        kwargs.update(
            name=CONSENSUS_NAME,
            colormap=rl.labels_colormap({i: CONSENSUS_COLOUR for i in range(1, max(n, 1) + 64)}),
            opacity=0.4,
        )
        layer = viewer.add_labels(self.consensus, **kwargs)
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
        from napari_lungkd.scoring.comparison import compare_models

        panel = self.w.lidc_panel
        if self.consensus is None or self.ct is not self.w.ct():
            return
        segs = {m: s for m, s in self.w.results.items() if self.w.result_ct is self.ct}
        try:
            if segs:
                comp = compare_models(
                    segs,
                    consensus=self.consensus,
                    reader_masks=self.reader_masks,
                    spacing_mm=self.ct.spacing_mm,
                    masks=self.w.model_masks(),
                )
            else:
                comp = compare_models({}, reader_masks=self.reader_masks)
        except Exception as exc:  # noqa: BLE001
            show_error(describe_error(exc))
            return
        self.comparison = comp
        rows = [
            r
            for r in comp.rows()
            if r["quantity"] not in ("parameters", "time per CT", "model speed", "speed-up")
        ]
        panel.show_rows(rows)

    def export_csv(self, path=None) -> Path | None:
        from napari_lungkd.files import atomic_write_bytes
        from napari_lungkd.scoring.comparison import rows_to_csv

        if self.comparison is None:
            show_error("Nothing to export yet: load LIDC annotations and segment the CT first.")
            return None
        if path is None:
            start = str(Path(self.ct.source).parent / "lidc_scores.csv")
            path, _ = QFileDialog.getSaveFileName(
                self.w, "Export scores as CSV", start, "CSV (*.csv)"
            )
            if not path:
                return None
        rows = self.comparison.rows()
        for row in rows:
            row["xml"] = self.xml_path.name if self.xml_path else ""
            row["level"] = float(self.w.lidc_panel.level.value())
        try:
            atomic_write_bytes(path, rows_to_csv(rows).encode())
        except OSError as exc:
            show_error(f"Cannot write {path}: {exc.strerror or exc}.")
            return None
        show_info(f"Scores written to {path}")
        return Path(path)
