"""Write one synthetic case exactly as an LIDC case is delivered, plus its truth.

Layout (``out_dir/<PatientID>/``)::

    LKD-PHANTOM-0007/
      series/            DICOM CT series (file names in no z order) + reads.xml (LIDC XML)
      truth_labels.nii.gz  true nodule labels (uint8, CT geometry; value = nodule label)
      nodules.json       facts per nodule, scanner settings, readers' biases, file list, provenance
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_lungkd import __version__
from napari_lungkd.files import atomic_path, atomic_write_bytes, write_json
from napari_lungkd.phantom.dicom import case_uids, write_series
from napari_lungkd.phantom.lidc_xml import lidc_xml_text
from napari_lungkd.phantom.readers import simulate_readers

XML_NAME = "reads.xml"


def write_case(
    phantom, out_dir, n_readers: int = 4, seed: int | None = None, overwrite: bool = True
) -> dict:
    """Write DICOM series + LIDC XML + truth NIfTI + facts JSON; return their paths.

    ``seed`` drives the simulated readers and the file-name shuffle (default: the phantom's seed).
    Returns ``{"case_dir", "series_dir", "xml", "truth_mask", "nodules_json", "series_uid"}``.
    """
    if not 1 <= int(n_readers) <= 8:
        raise ValueError(f"n_readers must be 1-8 (LIDC has 1-4, rarely up to 8), got {n_readers}")
    seed = phantom.seed if seed is None else int(seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    case_dir = Path(out_dir) / phantom.patient_id
    series_dir = case_dir / "series"
    if series_dir.exists():
        if not overwrite:
            raise FileExistsError(f"{series_dir} already exists")
        for old in series_dir.glob("*.dcm"):
            old.unlink()
    uids = case_uids(phantom.seed, phantom.shape[0])
    write_series(phantom, series_dir, uids, rng)
    reads = simulate_readers(phantom, int(n_readers), rng)
    xml = lidc_xml_text(
        reads, phantom.z_positions_mm, uids.sops, uids.series, uids.study, uids.message
    )
    xml_path = series_dir / XML_NAME
    atomic_write_bytes(xml_path, xml.encode("utf-8"))
    truth_path = case_dir / "truth_labels.nii.gz"
    write_truth(phantom, truth_path)
    json_path = case_dir / "nodules.json"
    write_json(json_path, case_facts(phantom, reads, uids))
    return {
        "case_dir": case_dir,
        "series_dir": series_dir,
        "xml": xml_path,
        "truth_mask": truth_path,
        "nodules_json": json_path,
        "series_uid": uids.series,
    }


def write_truth(phantom, path) -> Path:
    """The truth label volume as NIfTI in the CT's geometry (via export.write_mask when present)."""
    try:
        from napari_lungkd.io.masks import write_mask
    except ImportError:
        write_mask = None
    if write_mask is not None:
        return write_mask(path, phantom.labels, phantom.to_ct(), overwrite=True)
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(phantom.labels)
    img.SetSpacing(tuple(float(s) for s in phantom.spacing_mm[::-1]))
    img.SetOrigin(tuple(float(v) for v in phantom.origin_mm))
    with atomic_path(path) as tmp:
        sitk.WriteImage(img, str(tmp), useCompression=True)
    return Path(path)


def case_facts(phantom, reads, uids) -> dict:
    from dataclasses import asdict

    return {
        "patient_id": phantom.patient_id,
        "seed": phantom.seed,
        "shape_zyx": list(phantom.shape),
        "spacing_mm": list(phantom.spacing_mm),
        "origin_mm": list(phantom.origin_mm),
        "series_uid": uids.series,
        "study_uid": uids.study,
        "scanner": asdict(phantom.scanner),
        "contrast": bool(phantom.anatomy.contrast),
        "nodules": [n.to_dict() for n in phantom.nodules],
        "readers": [
            {
                "reader_id": r.reader_id,
                "bias_mm": round(r.bias_mm, 3),
                "jitter_mm": round(r.jitter_mm, 3),
                "marked_labels": [a.truth_label for a in r.annotations],
                "n_non_nodules": len(r.non_nodules),
            }
            for r in reads
        ],
        "provenance": {"generator": "napari_lungkd.phantom.make_phantom", "version": __version__},
    }
