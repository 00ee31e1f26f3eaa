"""Build the training cache and the patient-level split from LIDC-IDRI or ``lungkd phantom`` output.

    python -m src_training.prepare ROOT --out data/cache [--level 0.5] [--seed 0] [--workers 8]

ROOT is searched for LIDC reading XMLs (``LidcReadMessage``); each one is a case whose CT is the
DICOM series beside it (TCIA layout: the XML sits in the series folder; phantom output: the series
folder is found below the XML's folder). Per case the cache holds a folder ``<case_id>/`` with

* ``hu.npy``      int16 (z, y, x), optionally resampled in-plane to ``--spacing-mm``;
* ``mask.npy``    uint8 consensus mask of the readers at ``--level`` (``napari_lungkd.lidc.annotate``,
  the same code the plugin uses; ``--truth`` takes a phantom's true labels instead);
* ``labels.npy``  int16 nodule labels of that reference (one label per nodule, for per-nodule
  metrics);
* ``case.json``   patient id, spacing, source paths, slices with and without nodules.

``split.json`` assigns whole *patients* (never single series) to train / val / test, seeded, so a
patient's second scan can never leak from training into evaluation; :func:`check_no_leakage` is the
guard that evaluation calls.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from napari_lungkd.errors import LungKDError, TrainingError
from napari_lungkd.files import write_json
from napari_lungkd.progress import Progress, run_with_tqdm
from src_training import run_main

SPLIT_NAME = "split.json"


# ------------------------------------------------------------------ finding cases --------


def _is_ct_read(xml: Path) -> bool:
    try:
        head = xml.open("rb").read(4096)
    except OSError:
        return False
    return b"LidcReadMessage" in head


def _series_dir(xml: Path) -> Path | None:
    here = xml.parent
    if any(here.glob("*.dcm")):
        return here
    found = sorted({p.parent for p in here.rglob("*.dcm")})
    return found[0] if len(found) == 1 else None


def find_cases(root) -> list[dict]:
    """Every (series folder, XML) pair under ``root``, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise TrainingError(f"Data folder {root} does not exist.")
    cases = []
    for xml in sorted(root.rglob("*.xml")):
        if not _is_ct_read(xml):
            continue  # chest-radiograph reads and other XML
        series = _series_dir(xml)
        if series is None:
            continue
        truth = sorted(xml.parent.glob("*truth*.nii*")) + sorted(
            xml.parent.parent.glob("*truth*.nii*")
        )
        cases.append({"xml": xml, "series": series, "truth": truth[0] if truth else None})
    if not cases:
        raise TrainingError(
            f"No LIDC reading XML with a DICOM series beside it was found under {root}."
        )
    return cases


# ------------------------------------------------------------------ one case -------------


def reference_labels(
    ct, xml: Path, level: float, rule: str = "pylidc", truth: Path | None = None
) -> np.ndarray:
    """Nodule labels on the CT grid (0 = background, i = nodule i): the readers' consensus at
    ``level`` (fraction of the readers of a nodule, as in pylidc), or a truth label file."""
    if truth is not None:
        from napari_lungkd.io.masks import read_mask

        return np.asarray(read_mask(truth, ct)).astype(np.int16)
    from napari_lungkd.lidc import annotate

    return np.asarray(annotate(xml, ct, level=level).consensus_labels(rule)).astype(np.int16)


def resample_inplane(hu: np.ndarray, labels: np.ndarray, spacing_mm, target_mm: float):
    """Resample (y, x) to ``target_mm`` spacing: HU linear, nodule labels nearest-neighbour."""
    from scipy import ndimage

    zoom = (1.0, spacing_mm[1] / target_mm, spacing_mm[2] / target_mm)
    hu_r = ndimage.zoom(hu.astype(np.float32), zoom, order=1)
    labels_r = ndimage.zoom(labels, zoom, order=0)
    spacing = (float(spacing_mm[0]), float(target_mm), float(target_mm))
    return np.round(hu_r).astype(np.int16), labels_r.astype(np.int16), spacing


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "case"


def prepare_case(
    item: dict,
    out_dir: Path,
    level: float,
    spacing_mm: float | None,
    use_truth: bool,
    rule: str = "pylidc",
) -> dict:
    """Load one case, build its reference mask and write its cache folder; returns case.json."""
    from napari_lungkd.io import load_ct

    ct = load_ct(item["series"])
    if use_truth and item["truth"] is None:
        raise TrainingError(
            f"Case {item['series']} has no *truth*.nii(.gz) beside it, so --truth cannot be used."
        )
    labels = reference_labels(ct, item["xml"], level, rule, item["truth"] if use_truth else None)
    hu = np.asarray(ct.hu)
    hu = np.clip(np.round(hu), -32768, 32767).astype(np.int16) if hu.dtype != np.int16 else hu
    spacing = tuple(float(v) for v in ct.spacing_mm)
    if spacing_mm:
        hu, labels, spacing = resample_inplane(hu, labels, spacing, float(spacing_mm))
    patient = ct.patient_id or item["series"].parents[1].name
    case_id = _safe(f"{patient}_{(ct.series_uid or item['series'].name)[-12:]}_{item['xml'].stem}")
    return write_case(
        out_dir,
        case_id,
        patient,
        hu,
        labels,
        spacing,
        reference="truth" if use_truth else f"consensus level {level} ({rule})",
        extra={
            "series_uid": ct.series_uid,
            "source_series": str(item["series"]),
            "source_xml": str(item["xml"]),
            "original_spacing_mm": [float(v) for v in ct.spacing_mm],
        },
    )


def write_case(
    out_dir: Path,
    case_id: str,
    patient: str,
    hu: np.ndarray,
    labels: np.ndarray,
    spacing,
    reference: str,
    extra: dict | None = None,
    hard=None,
    ignore=None,
) -> dict:
    """Write one cache folder (hu, mask, labels, optional ignore, case.json) and return case.json.

    ``hard``: ``(k, 3)`` voxel centres of hard negatives; ``ignore``: bool ``(z, y, x)``, pixels
    the loss leaves out (a host's own lesions). Positive slices hold a nodule; the others are the
    negative slices (an ignored lesion does not make a slice positive).
    """
    folder = Path(out_dir) / case_id
    folder.mkdir(parents=True, exist_ok=True)
    hu = np.asarray(hu)
    hu = np.clip(np.round(hu), -32768, 32767).astype(np.int16) if hu.dtype != np.int16 else hu
    labels = np.asarray(labels).astype(np.int16)
    mask = (labels > 0).astype(np.uint8)
    for name, arr in (("hu", hu), ("mask", mask), ("labels", labels)):
        np.save(folder / f"{name}.npy", arr)
    if ignore is not None and np.asarray(ignore).any():
        np.save(folder / "ignore.npy", (np.asarray(ignore) > 0).astype(np.uint8))
    per_slice = mask.reshape(mask.shape[0], -1).any(axis=1)
    meta = {
        "case_id": case_id,
        "patient_id": patient,
        **(extra or {}),
        "reference": reference,
        "spacing_mm": [float(v) for v in spacing],
        "shape": list(hu.shape),
        "n_nodules": int(len(np.unique(labels)) - 1),
        "positive_slices": np.flatnonzero(per_slice).tolist(),
        "negative_slices": np.flatnonzero(~per_slice).tolist(),
        "hard_negatives": np.asarray(hard if hard is not None else [], np.int64)
        .reshape(-1, 3)
        .tolist(),
        "ignored_voxels": int(np.count_nonzero(ignore)) if ignore is not None else 0,
    }
    write_json(folder / "case.json", meta)  # last: a folder with case.json is complete
    return meta


# ------------------------------------------------------------------ split ----------------


def make_split(
    patients_to_cases: dict[str, list[str]], fractions=(0.7, 0.15, 0.15), seed: int = 0
) -> dict:
    """Assign whole patients to train/val/test (seeded); every part gets >= 1 patient if it can."""
    patients = sorted(patients_to_cases)
    rng = np.random.default_rng(seed)
    order = [patients[i] for i in rng.permutation(len(patients))]
    n = len(order)
    n_val = max(1, int(round(fractions[1] * n))) if n >= 3 else 0
    n_test = max(1, int(round(fractions[2] * n))) if n >= 3 else (1 if n == 2 else 0)
    n_train = n - n_val - n_test
    parts = {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }
    split = {"seed": seed, "fractions": list(fractions), "patients": {}, "cases": {}}
    for name, pats in parts.items():
        split["patients"][name] = sorted(pats)
        split["cases"][name] = sorted(c for p in pats for c in patients_to_cases[p])
    return split


def test_only(split_path) -> dict:
    """Move every patient and case of the split at ``split_path`` into its test part (rewritten
    atomically): a held-out set to score trained models on, never to train on."""
    split = json.loads(Path(split_path).read_text())
    for key in ("patients", "cases"):
        every = sorted({x for part in split[key].values() for x in part})
        split[key] = {"train": [], "val": [], "test": every}
    write_json(split_path, split)
    return split


def read_split(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"Split file {path} does not exist; run src_training.prepare first.")
    split = json.loads(path.read_text())
    for key in ("patients", "cases"):
        if key not in split or not {"train", "val", "test"} <= set(split[key]):
            raise TrainingError(f"Split file {path} has no {key} for train/val/test.")
    return split


def check_no_leakage(case_patients: dict[str, str], train_patients) -> None:
    """Refuse (TrainingError) to evaluate any case whose patient was used for training."""
    train = set(train_patients)
    leaked = sorted(c for c, p in case_patients.items() if p in train)
    if leaked:
        raise TrainingError(
            f"Case {leaked[0]} (patient {case_patients[leaked[0]]}) belongs to a training patient; "
            f"evaluating on it would leak ({len(leaked)} such case(s))."
        )


# ------------------------------------------------------------------ driver ---------------


def _prepare_or_skip(item, out_dir, level, spacing_mm, use_truth, rule):
    """``(True, case.json)``, or ``(False, reason)`` for a case that cannot be used (it is skipped)."""
    try:
        return True, prepare_case(item, out_dir, level, spacing_mm, use_truth, rule)
    except LungKDError as exc:  # broken XML, unreadable series, missing truth
        return False, {"xml": str(item["xml"]), "reason": str(exc)}


def iter_prepare(
    root,
    out_dir,
    level: float = 0.5,
    spacing_mm=None,
    seed: int = 0,
    fractions=(0.7, 0.15, 0.15),
    use_truth: bool = False,
    limit: int | None = None,
    rule: str = "pylidc",
    workers: int = 1,
):
    """Generator: prepare every case under ``root`` (yields Progress), then write split.json."""
    out_dir = Path(out_dir)
    items = find_cases(root)[: limit or None]
    metas, skipped = [], []
    args = (out_dir, level, spacing_mm, use_truth, rule)
    if workers > 1:  # one process per case; results in the order of `items` (deterministic)
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(_prepare_or_skip, item, *args) for item in items]
            for i, fut in enumerate(futures):
                yield Progress(i, len(items), "prepare", items[i]["series"].name)
                ok, value = fut.result()
                (metas if ok else skipped).append(value)
    else:
        for i, item in enumerate(items):
            yield Progress(i, len(items), "prepare", item["series"].name)
            ok, value = _prepare_or_skip(item, *args)
            (metas if ok else skipped).append(value)
    yield Progress(len(items), len(items), "prepare")
    if not metas:
        raise TrainingError(f"No case under {root} could be prepared: {skipped[:1]}")
    by_patient: dict[str, list[str]] = {}
    for m in metas:
        by_patient.setdefault(m["patient_id"], []).append(m["case_id"])
    split = make_split(by_patient, fractions, seed)
    split.update(
        {
            "root": str(root),
            "level": level,
            "spacing_mm": spacing_mm,
            "reference": metas[0]["reference"],
            "skipped": skipped,
        }
    )
    write_json(out_dir / SPLIT_NAME, split)
    return split


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m src_training.prepare", description=__doc__.splitlines()[0]
    )
    ap.add_argument(
        "root", help="LIDC-IDRI download (TCIA layout) or `lungkd phantom` output folder"
    )
    ap.add_argument("--out", required=True, help="cache folder to write")
    ap.add_argument(
        "--level",
        type=float,
        default=0.5,
        help="consensus level: fraction of a nodule's readers that must agree (pylidc; default 0.5)",
    )
    ap.add_argument(
        "--rule",
        default="pylidc",
        choices=["pylidc", "luna16"],
        help="which nodules count: all (pylidc) or those marked by >= 3 readers (luna16)",
    )
    ap.add_argument(
        "--spacing-mm", type=float, default=None, help="resample in-plane to this spacing"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the patient split")
    ap.add_argument(
        "--fractions",
        type=float,
        nargs=3,
        default=(0.7, 0.15, 0.15),
        metavar=("TRAIN", "VAL", "TEST"),
    )
    ap.add_argument(
        "--truth",
        action="store_true",
        help="phantom only: use the true masks, not the readers' consensus",
    )
    ap.add_argument("--limit", type=int, default=None, help="prepare at most this many cases")
    ap.add_argument("--workers", type=int, default=1, help="cases prepared in parallel processes")
    args = ap.parse_args(argv)
    split = run_with_tqdm(
        iter_prepare(
            args.root,
            args.out,
            args.level,
            args.spacing_mm,
            args.seed,
            tuple(args.fractions),
            args.truth,
            args.limit,
            args.rule,
            args.workers,
        ),
        "prepare",
    )
    counts = {k: len(v) for k, v in split["cases"].items()}
    print(f"cache {args.out}: cases {counts}, skipped {len(split['skipped'])}")
    return 0


if __name__ == "__main__":
    run_main(main)
