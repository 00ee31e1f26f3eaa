"""The training set that teaches real CT: phantoms, nodules inserted into real chests, LIDC-IDRI.

    python -m src_training.mix --out data/mix [--phantoms 0-11] [--classic]
        [--hosts pyradiomics_lung2,Lung_Dx-A0001,elastix_baseline,elastix_followup] [--inserted 2]
        [--hard-model student] [--lidc ROOT] [--val-fraction 0.2] [--seed 0]

Writes a cache that :mod:`src_training.data` reads (the layout of :mod:`src_training.prepare`, one
folder per case, and ``split.json``), from a mix of

* **phantom cases** (``make_phantom(seed, varied=True)``: the scanner randomised per case; ``--classic``
  takes the classic phantom the bundled weights learnt from), labelled by their true masks;
* **inserted cases**: per real host (``src_training.real_chests``; the CC BY-NC scans are refused)
  ``--inserted`` copies, each with other synthetic nodules (``phantom.insert_nodules``, seeds
  7000, 7001, ...), and the host's own lesions (LIDC outlines, GTVs, boxes, grown 5 mm) saved as
  ``ignore.npy``: the loss never calls a real lesion background, nor nodule;
* **LIDC-IDRI** cases under ``--lidc`` when you have them (the readers' consensus, as ``prepare``).

Every case also gets **hard negatives** in its case.json: voxel centres where crops are drawn
(``data.hard_fraction`` of each epoch): vessels inside the lungs (local HU maxima above -500 HU, off
every nodule and ignored lesion by :data:`HARD_CLEARANCE_MM`), the phantom's own nodule-like
vessel points, and with ``--hard-model`` the false marks of that model on each real host (its own
vessels mistaken for nodules; the model runs once per host).

The split is by patient: all cases of one host (and both scans of one patient) fall in one part;
real hosts train unless named in ``--val-hosts``; phantoms split ``--val-fraction`` to validation;
the patients in ``--hold-out`` (by default LIDC-IDRI-0001 and every scan that may not train) are
written to the split's test part and never built, so evaluation can check for leakage. A case whose
folder already holds a case.json is kept: an interrupted build resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from napari_lungkd.errors import TrainingError
from napari_lungkd.files import write_json
from napari_lungkd.progress import Progress, run_with_tqdm
from src_training import run_main
from src_training.prepare import SPLIT_NAME, find_cases, prepare_case, write_case

HARD_CLEARANCE_MM = 5.0
"""Hard negatives lie at least this far from any nodule and any ignored lesion."""
VESSEL_HU = -500.0
"""Inside the lungs, voxels above this are vessels, airway walls, fissures (or nodules)."""
VESSEL_POINTS = 200
"""Vessel centres kept per case (seeded choice among the local maxima)."""
INSERT_SEED0 = 7000
"""The insertion seeds of a host: INSERT_SEED0, INSERT_SEED0 + 1, ... (one per inserted case)."""
DEFAULT_HOLD_OUT = ("LIDC-IDRI-0001",)


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


# ------------------------------------------------------------------ hard negatives ---------


def vessel_points(hu, spacing_mm, avoid, n: int, seed: int) -> np.ndarray:
    """``(k, 3)`` voxel centres of vessels in the lungs: local HU maxima (3-D, 3-voxel window)
    above :data:`VESSEL_HU` inside the lung mask, at least :data:`HARD_CLEARANCE_MM` from
    ``avoid`` (bool, nodules and ignored lesions); ``n`` of them, chosen with ``seed``."""
    from scipy import ndimage

    from napari_lungkd.inference.lung_mask import find_lung_mask

    hu = np.asarray(hu)
    lungs = find_lung_mask(hu, spacing_mm)
    if not lungs.found:
        return np.zeros((0, 3), np.int64)
    step = lungs.step
    small = hu[:, ::step, ::step].astype(np.float32)
    peak = (small == ndimage.maximum_filter(small, size=3)) & (small > VESSEL_HU) & lungs.inside
    # not on the lung's rim (the chest wall is dense, and its maxima are not vessels)
    peak &= lungs.border_distance_mm > 3.0
    if avoid is not None and np.asarray(avoid).any():
        sub = np.asarray(avoid)[:, ::step, ::step]
        coarse = (float(spacing_mm[0]), float(spacing_mm[1]) * step, float(spacing_mm[2]) * step)
        far = ndimage.distance_transform_edt(~sub, sampling=coarse) > HARD_CLEARANCE_MM
        peak &= far
    cells = np.argwhere(peak)
    if len(cells) > n:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7E55]))
        cells = cells[np.sort(rng.choice(len(cells), n, replace=False))]
    cells[:, 1:] *= step
    return cells.astype(np.int64)


def model_false_marks(segmenter, ct, avoid) -> np.ndarray:
    """``(k, 3)`` voxel centres of the components ``segmenter`` marks as nodules (probability at
    its mask threshold) that lie off ``avoid`` (nodules, ignored lesions) by the clearance."""
    from scipy import ndimage

    from napari_lungkd.inference.candidates import find_candidates
    from napari_lungkd.progress import run_to_end

    seg = run_to_end(segmenter.iter_segment(ct))
    cands = find_candidates(seg.probability, ct.hu, ct.spacing_mm)
    far = None
    if avoid is not None and np.asarray(avoid).any():
        far = ndimage.distance_transform_edt(~np.asarray(avoid), sampling=ct.spacing_mm)
    out = []
    for c in cands.items:
        if c.features["prob_max"] < segmenter.threshold:
            continue
        zyx = tuple(int(round(v)) for v in c.centroid_zyx)
        if far is not None and far[zyx] <= HARD_CLEARANCE_MM:
            continue
        out.append(zyx)
    return np.asarray(out, np.int64).reshape(-1, 3)


def _keep_clear(points: np.ndarray, labels: np.ndarray, spacing_mm) -> np.ndarray:
    """``points`` at least the clearance away from every labelled nodule."""
    from scipy import ndimage

    if not len(points) or not labels.any():
        return points
    dist = ndimage.distance_transform_edt(labels == 0, sampling=spacing_mm)
    return points[dist[tuple(points.T)] > HARD_CLEARANCE_MM]


# ------------------------------------------------------------------ the cases --------------


def phantom_case(out_dir: Path, seed: int, classic: bool, size: int) -> dict:
    """One phantom case (true labels, its nodule-like vessel points and vessel maxima as hard
    negatives)."""
    from napari_lungkd.phantom import make_phantom

    n_slices = 80 + (seed % 5) * 20  # 80-160 slices: slice spacing about 4 to 2 mm
    p = make_phantom(seed, size=size, n_slices=n_slices, varied=not classic)
    labels = p.labels.astype(np.int16)
    hard = vessel_points(p.hu, p.spacing_mm, labels > 0, VESSEL_POINTS, seed)
    distractors = np.asarray(p.distractors_zyx, np.int64).reshape(-1, 3)
    hard = np.concatenate([_keep_clear(distractors, labels, p.spacing_mm), hard])
    kind = "phantom (classic)" if classic else "phantom (varied scanner)"
    return write_case(
        out_dir,
        f"phantom-{seed:05d}{'c' if classic else 'v'}",
        p.patient_id,
        p.hu,
        labels,
        p.spacing_mm,
        reference="truth",
        extra={"kind": kind, "seed": seed},
        hard=hard,
    )


def host_cases(out_dir: Path, chest, n_inserted: int, segmenter=None, loaded=None):
    """Generator of the ``n_inserted`` inserted cases of one real host (yields their case.json);
    ``loaded``: ``(ct, marked)`` from a hosts pack instead of the scan in ``$LUNGKD_REALDATA``."""
    from napari_lungkd.io import load_ct
    from napari_lungkd.phantom import insert_nodules
    from src_training.real_chests import check_trainable, lesion_mask

    check_trainable(chest)
    host, marked = loaded if loaded is not None else (load_ct(chest.path()), None)
    marked = lesion_mask(chest, host) if marked is None else marked
    spacing = tuple(float(s) for s in host.spacing_mm)
    vessels = vessel_points(host.hu, spacing, marked, VESSEL_POINTS, 0)
    fps = model_false_marks(segmenter, host, marked) if segmenter is not None else None
    for k in range(n_inserted):
        seed = INSERT_SEED0 + k
        case_id = f"{chest.name}+ins{seed}"
        if (out_dir / case_id / "case.json").is_file():
            yield {"case_id": case_id, "patient_id": chest.patient, "kept": True}
            continue
        ins = insert_nodules(host, seed, ignore=marked)
        labels = ins.labels.astype(np.int16)
        parts = [vessels] + ([fps] if fps is not None else [])
        hard = np.concatenate([_keep_clear(p, labels, spacing) for p in parts])
        yield write_case(
            out_dir,
            case_id,
            chest.patient,
            ins.ct.hu,
            labels,
            spacing,
            reference="inserted nodules (truth)",
            extra={
                "kind": "inserted",
                "host": chest.name,
                "seed": seed,
                "hard_model_false_marks": None if fps is None else len(fps),
            },
            hard=hard,
            ignore=ins.ignore,
        )


# ------------------------------------------------------------------ split and driver -------


def mix_split(
    patients: dict[str, list[str]],
    hosts: set[str],
    val_hosts: set[str],
    held_out,
    val_fraction,
    seed,
) -> dict:
    """Whole patients to train / val / test: real hosts train (or validate when named), the other
    patients (phantoms, LIDC) split seeded, the held-out patients are the test part."""
    rng = np.random.default_rng((int(seed), 0x5B17))
    others = sorted(p for p in patients if p not in hosts)
    order = [others[i] for i in rng.permutation(len(others))]
    n_val = int(round(val_fraction * len(order))) if len(order) > 1 else 0
    n_val = max(n_val, 1) if val_fraction > 0 and len(order) > 1 else n_val
    parts = {
        "train": sorted(order[n_val:] + [h for h in hosts if h in patients and h not in val_hosts]),
        "val": sorted(order[:n_val] + [h for h in val_hosts if h in patients]),
        "test": sorted(held_out),
    }
    return {
        "seed": int(seed),
        "patients": parts,
        "cases": {
            name: sorted(c for p in pats for c in patients.get(p, []))
            for name, pats in parts.items()
        },
    }


def iter_mix(
    out_dir,
    phantom_seeds=(),
    classic: bool = False,
    size: int = 512,
    hosts=(),
    n_inserted: int = 2,
    hard_model: str | None = None,
    lidc_root=None,
    held_out=DEFAULT_HOLD_OUT,
    val_hosts=(),
    val_fraction: float = 0.2,
    seed: int = 0,
    hosts_pack=None,
):
    """Generator: build every case (yields Progress; kept cases are not rebuilt), then split.json.
    ``hosts_pack``: a file of :mod:`src_training.hosts_pack`; its hosts (all, or those in ``hosts``)
    come from it instead of ``$LUNGKD_REALDATA``."""
    from src_training.real_chests import CHESTS, check_trainable

    packed = {}
    if hosts_pack:
        from src_training.hosts_pack import load_pack

        packed = {h.name: (h.ct, h.ignore) for h in load_pack(hosts_pack)}
        hosts = list(hosts) or sorted(packed)
        if set(hosts) - set(packed):
            raise TrainingError(
                f"Hosts pack {hosts_pack} has no {sorted(set(hosts) - set(packed))[0]}."
            )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_name = {c.name: c for c in CHESTS}
    unknown = sorted(set(hosts) - set(by_name))
    if unknown:
        raise TrainingError(f"Unknown real host {unknown[0]} (known: {', '.join(by_name)}).")
    chests = [by_name[h] for h in hosts]
    for chest in chests:  # the licence first: it is the reason, not the hold-out it implies
        check_trainable(chest)
    held = set(held_out) | {c.patient for c in CHESTS if not c.trainable}
    clash = sorted({c.patient for c in chests} & held)
    if clash:
        raise TrainingError(f"Host {clash[0]} is held out; it cannot also train.")
    lidc_items = find_cases(lidc_root) if lidc_root else []
    total = len(phantom_seeds) + len(chests) * n_inserted + len(lidc_items)
    segmenter = None
    if hard_model and chests:
        from napari_lungkd.inference.segmenter import Segmenter

        segmenter = Segmenter(hard_model)
    patients: dict[str, list[str]] = {}
    done = 0
    for s in phantom_seeds:
        yield Progress(done, total, "mix", f"phantom {s}")
        case_id = f"phantom-{s:05d}{'c' if classic else 'v'}"
        meta = _kept(out_dir, case_id) or phantom_case(out_dir, s, classic, size)
        patients.setdefault(meta["patient_id"], []).append(meta["case_id"])
        done += 1
    for chest in chests:
        for meta in host_cases(out_dir, chest, n_inserted, segmenter, packed.get(chest.name)):
            yield Progress(done, total, "mix", meta["case_id"])
            patients.setdefault(chest.patient, []).append(meta["case_id"])
            done += 1
    for item in lidc_items:
        yield Progress(done, total, "mix", item["series"].name)
        meta = prepare_case(item, out_dir, 0.5, None, False)
        if meta["patient_id"] not in held:
            patients.setdefault(meta["patient_id"], []).append(meta["case_id"])
        done += 1
    yield Progress(total, total, "mix")
    if not patients:
        raise TrainingError("Nothing to build: give --phantoms, --hosts or --lidc.")
    val_patients = {by_name[h].patient for h in val_hosts if h in by_name}
    split = mix_split(patients, {c.patient for c in chests}, val_patients, held, val_fraction, seed)
    split.update(
        {
            "fractions": None,
            "root": str(out_dir),
            "level": 0.5,
            "spacing_mm": None,
            "reference": "mix: phantom truth, inserted truth, LIDC consensus 0.5",
            "skipped": [],
            "recipe": {
                "phantom_seeds": list(phantom_seeds),
                "classic": classic,
                "hosts": list(hosts),
                "inserted_per_host": n_inserted,
                "hard_model": hard_model,
                "hosts_pack": str(hosts_pack) if hosts_pack else None,
                "lidc": str(lidc_root) if lidc_root else None,
            },
        }
    )
    write_json(out_dir / SPLIT_NAME, split)
    return split


def _kept(out_dir: Path, case_id: str) -> dict | None:
    import json

    path = out_dir / case_id / "case.json"
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m src_training.mix", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--out", required=True, help="cache folder to write (resumable)")
    ap.add_argument("--phantoms", default="0-11", help="phantom seeds, e.g. 0-11,20 ('' for none)")
    ap.add_argument("--classic", action="store_true", help="the classic phantom (not varied)")
    ap.add_argument("--size", type=int, default=512, help="phantom in-plane matrix")
    ap.add_argument("--hosts", default="", help="real hosts (names in src_training.real_chests)")
    ap.add_argument("--inserted", type=int, default=2, help="inserted cases per host")
    ap.add_argument("--hard-model", default=None, help="model whose false marks are hard negatives")
    ap.add_argument("--lidc", type=Path, default=None, help="LIDC-IDRI download (TCIA layout)")
    ap.add_argument("--hold-out", default=",".join(DEFAULT_HOLD_OUT), help="patients never built")
    ap.add_argument("--val-hosts", default="", help="real hosts that validate instead of training")
    ap.add_argument(
        "--val-fraction", type=float, default=0.2, help="phantom patients to validation"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the split")
    ap.add_argument("--hosts-pack", default=None, help="real hosts from this pack (hosts_pack.py)")
    ap.add_argument(
        "--test-only",
        action="store_true",
        help="a held-out test set: every case built goes to the test part (no model may train on it)",
    )
    args = ap.parse_args(argv)
    names = [h for h in args.hosts.split(",") if h]
    split = run_with_tqdm(
        iter_mix(
            args.out,
            _seeds(args.phantoms),
            args.classic,
            args.size,
            names,
            args.inserted,
            args.hard_model,
            args.lidc,
            [h for h in args.hold_out.split(",") if h],
            [h for h in args.val_hosts.split(",") if h],
            args.val_fraction,
            args.seed,
            args.hosts_pack,
        ),
        "mix",
    )
    if args.test_only:
        from src_training.prepare import test_only

        split = test_only(Path(args.out) / "split.json")
    counts = {k: len(v) for k, v in split["cases"].items()}
    print(f"cache {args.out}: cases {counts}; held out: {', '.join(split['patients']['test'])}")
    return 0


if __name__ == "__main__":
    run_main(main)
