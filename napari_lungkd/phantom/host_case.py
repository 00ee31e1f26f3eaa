"""Write a real CT with inserted nodules as a case, laid out like the phantom's cases.

Layout (``out_dir/<PatientID>/``)::

    LKD-INSERT-<host>-0007/
      series/            DICOM CT series (new UIDs) + reads.xml (LIDC XML of simulated readers)
      truth_labels.nii.gz  the inserted nodules' labels (uint8, CT geometry; value = nodule label)
      ignore.nii.gz      the host's own lesions, grown: neither nodule nor background in training
      nodules.json       facts per nodule, the host's measured noise and blur, file list, provenance

The simulated readers outline only the inserted nodules: the host's own lesions are not in the XML
(they are in ``ignore.nii.gz``), so anything reading the XML alone must also read the ignore mask.
The series gets new UIDs (from the host's identity and the seed): it is not the host's series.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from napari_lungkd import __version__
from napari_lungkd.files import atomic_write_bytes, write_json
from napari_lungkd.phantom.insert import Inserted, InsertError

XML_NAME = "reads.xml"


@dataclass(frozen=True, eq=False)
class _HostCase:
    """What the phantom's writers read from a Phantom, for an inserted case."""

    seed: int
    hu: np.ndarray
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    labels: np.ndarray
    nodules: tuple
    distractors_zyx: np.ndarray
    scanner: SimpleNamespace
    anatomy: SimpleNamespace
    patient_id: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.hu.shape)  # type: ignore[return-value]

    @property
    def z_positions_mm(self) -> np.ndarray:
        return self.origin_mm[2] + self.spacing_mm[0] * np.arange(self.shape[0])


def host_tag(ct) -> str:
    """A short file-system-safe name of the host (patient ID, else the file or folder name)."""
    name = ct.patient_id or Path(str(ct.source)).name.split(".")[0] or "HOST"
    return re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-")[:40] or "HOST"


def write_inserted_case(
    inserted: Inserted, host, out_dir, seed: int, n_readers: int = 4, overwrite: bool = True
) -> dict:
    """Write ``inserted`` (made from ``host`` with ``seed``) as a case; returns its paths."""
    from napari_lungkd.io.masks import write_mask
    from napari_lungkd.phantom.dicom import case_uids, write_series
    from napari_lungkd.phantom.lidc_xml import lidc_xml_text
    from napari_lungkd.phantom.readers import simulate_readers

    ct = inserted.ct
    if not np.allclose(np.asarray(ct.direction, float), np.eye(3), atol=1e-4):
        raise InsertError(
            f"{host.source} is stored obliquely; only axial hosts can be written as DICOM cases."
        )
    tag = host_tag(host)
    hu = ct.hu if ct.hu.dtype == np.int16 else np.clip(np.rint(ct.hu), -32768, 32767)
    case = _HostCase(
        seed=int(seed),
        hu=hu.astype(np.int16, copy=False),
        spacing_mm=tuple(float(s) for s in ct.spacing_mm),  # type: ignore[arg-type]
        origin_mm=tuple(float(v) for v in ct.origin_mm),  # type: ignore[arg-type]
        labels=inserted.labels,
        nodules=inserted.nodules,
        distractors_zyx=np.zeros((0, 3)),
        scanner=SimpleNamespace(
            fov_mm=float(ct.shape[2] * ct.spacing_mm[2]),
            kernel=str(ct.metadata.get("convolution_kernel", "HOST"))[:16],
        ),
        anatomy=SimpleNamespace(contrast=False),  # not known from the host's header
        patient_id=f"LKD-INSERT-{tag}-{int(seed):04d}",
    )
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7919, 2]))
    case_dir = Path(out_dir) / case.patient_id
    series_dir = case_dir / "series"
    if series_dir.exists():
        if not overwrite:
            raise InsertError(f"{series_dir} already exists.")
        for old in series_dir.glob("*.dcm"):
            old.unlink()
    uids = case_uids(f"{tag}:{host.series_uid or host.source}:{int(seed)}", case.shape[0], "insert")
    write_series(case, series_dir, uids, rng)
    reads = simulate_readers(case, int(n_readers), rng)
    xml = lidc_xml_text(
        reads, case.z_positions_mm, uids.sops, uids.series, uids.study, uids.message
    )
    xml_path = series_dir / XML_NAME
    atomic_write_bytes(xml_path, xml.encode("utf-8"))
    truth = write_mask(case_dir / "truth_labels.nii.gz", inserted.labels, ct, overwrite=True)
    ignore = write_mask(case_dir / "ignore.nii.gz", inserted.ignore, ct, overwrite=True)
    facts = {
        "patient_id": case.patient_id,
        "seed": int(seed),
        "host": {
            "source": str(host.source),
            "patient_id": host.patient_id,
            "series_uid": host.series_uid,
            "tag": tag,
        },
        "shape_zyx": list(case.shape),
        "spacing_mm": list(case.spacing_mm),
        "origin_mm": list(case.origin_mm),
        "series_uid": uids.series,
        "study_uid": uids.study,
        "host_look": inserted.look.to_dict() if inserted.look else None,
        "ignore_voxels": int(inserted.ignore.sum()),
        "nodules": [n.to_dict() for n in inserted.nodules],
        "note": "reads.xml marks only the inserted nodules; ignore.nii.gz holds the host's own "
        "lesions (grown), which are neither nodule nor background",
        "readers": [
            {"reader_id": r.reader_id, "marked_labels": [a.truth_label for a in r.annotations]}
            for r in reads
        ],
        "provenance": {"generator": "napari_lungkd.phantom.insert_nodules", "version": __version__},
    }
    json_path = case_dir / "nodules.json"
    write_json(json_path, facts)
    return {
        "case_dir": case_dir,
        "series_dir": series_dir,
        "xml": xml_path,
        "truth_mask": truth,
        "ignore_mask": ignore,
        "nodules_json": json_path,
        "series_uid": uids.series,
    }
