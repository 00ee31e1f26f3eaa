"""Candidate tables for the false-positive classifier: run the U-Net, find candidates, label them.

One table per case (a seeded phantom or a real chest of ``$LUNGKD_REALDATA``), cached as
``<cache>/<model>/<case>.npz`` so that an interrupted run resumes where it stopped and a new
classifier is trained and scored without running the U-Net again. Each candidate row holds its
features (:data:`~napari_lungkd.inference.candidate_features.FEATURE_NAMES`), the reference it
hits (``-1``: none) and whether it lies on an irrelevant region; rows on neither are false
positives. Training labels: hit = 1, false positive = 0, irrelevant = left out.

    python -m src_training.fp_data --phantoms 0-23 --real all --inserted 2 --cache data/fp_cache
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_lungkd.inference.candidate_features import FEATURE_NAMES

PHANTOM_SEED_BASE = 5000
"""Phantom seeds for classifier cases start here, away from the U-Net's training seeds."""
INSERT_SEED_BASE = 7000
"""Seeds of the nodules inserted into real chests."""


@dataclass(frozen=True, eq=False)
class CaseTable:
    name: str
    patient: str
    kind: str  # "phantom" | "real" | "inserted" (a real chest with synthetic nodules)
    trainable: bool
    features: np.ndarray  # (n, F) float64
    ref_hit: np.ndarray  # (n,) int: index of the reference hit, -1 none
    ignored: np.ndarray  # (n,) bool: on an irrelevant region (and on no reference)
    n_references: int
    seconds: dict
    centres: np.ndarray | None = None  # (n, 3) voxel z, y, x of each candidate
    patches: np.ndarray | None = None  # (n, 32, 32, 32) int16 HU, 1 mm (candidate_patches)

    @property
    def y(self) -> np.ndarray:
        """1 hit, 0 false positive, -1 left out."""
        return np.where(self.ref_hit >= 0, 1, np.where(self.ignored, -1, 0))

    def arrays(self) -> dict[str, np.ndarray]:
        """What :meth:`save` writes (and :meth:`load` reads back)."""
        out = {
            "features": self.features,
            "ref_hit": self.ref_hit,
            "ignored": self.ignored,
            "meta": np.array(
                [
                    self.name,
                    self.patient,
                    self.kind,
                    str(int(self.trainable)),
                    str(self.n_references),
                ]
            ),
            "feature_names": np.array(FEATURE_NAMES),
            "seconds": np.array([self.seconds.get(k, 0.0) for k in ("model", "candidates")]),
        }
        if self.centres is not None:
            out["centres"] = self.centres
        if self.patches is not None:
            out["patches"] = self.patches
        return out

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **self.arrays())
        tmp.replace(path)

    @classmethod
    def load(cls, path) -> CaseTable:
        """The table saved at ``path`` (a file name or a binary file object)."""
        with np.load(path) as z:
            if tuple(z["feature_names"]) != FEATURE_NAMES:
                raise ValueError(f"{path} holds other features than this version computes")
            name, patient, kind, trainable, n_refs = (str(v) for v in z["meta"])
            sec = z["seconds"]
            return cls(
                name,
                patient,
                kind,
                trainable == "1",
                z["features"],
                z["ref_hit"],
                z["ignored"].astype(bool),
                int(n_refs),
                {"model": float(sec[0]), "candidates": float(sec[1])},
                z["centres"] if "centres" in z.files else None,
                z["patches"] if "patches" in z.files else None,
            )


def load_tables(cache: Path, model: str = "student") -> list[CaseTable]:
    """Every finished table of ``model`` under ``cache`` (``<cache>/<model>/*.npz``), by name."""
    paths = sorted(p for p in (cache / model).glob("*.npz") if not p.name.endswith(".tmp.npz"))
    return [CaseTable.load(p) for p in paths]


def _outcomes(case, n: int):
    from napari_lungkd.scoring.hits import candidate_outcomes

    hits, on_irr = candidate_outcomes(case)
    ref_hit = np.where(hits.any(axis=1), hits.argmax(axis=1), -1) if hits.size else np.full(n, -1)
    ignored = on_irr & (ref_hit < 0)
    return ref_hit.astype(np.int32), ignored.astype(bool)


def _where(cands, ct) -> dict:
    """The candidates' centres and their 3-D patches (the 3-D CNN's input), for the table."""
    from napari_lungkd.inference.candidate_patches import candidate_patches

    centres = np.array([c.centroid_zyx for c in cands.items], dtype=np.float32).reshape(-1, 3)
    return {"centres": centres, "patches": candidate_patches(ct.hu, ct.spacing_mm, centres)}


def _candidates(segmenter, ct, keep=None):
    """Candidates of ``segmenter`` on ``ct``; ``keep`` (a list) receives the Segmentation."""
    from napari_lungkd.inference.candidates import find_candidates
    from napari_lungkd.progress import run_to_end
    from napari_lungkd.scoring.hits import ScoredCandidate

    t0 = time.perf_counter()
    seg = run_to_end(segmenter.iter_segment(ct))
    t1 = time.perf_counter()
    cands = find_candidates(seg.probability, ct.hu, ct.spacing_mm)
    t2 = time.perf_counter()
    scored = tuple(
        ScoredCandidate(c.centroid_zyx, c.features["prob_max"], c.label) for c in cands.items
    )
    if keep is not None:
        keep.append(seg)
    return cands, scored, {"model": t1 - t0, "candidates": t2 - t1}


def phantom_case(seed: int, size: int = 512):
    """The phantom of classifier case ``seed`` (80-160 slices: slice spacing about 4 to 2 mm;
    3-6 nodules), the same every time it is made."""
    from napari_lungkd.phantom import make_phantom

    return make_phantom(seed, size=size, n_slices=80 + (seed % 5) * 20, n_nodules=3 + seed % 4)


def phantom_table(segmenter, seed: int, size: int = 512) -> CaseTable:
    from napari_lungkd.scoring.hits import Reference, ScanCase

    p = phantom_case(seed, size)
    ct = p.to_ct()
    cands, scored, sec = _candidates(segmenter, ct)
    refs = tuple(
        Reference(n.centre_zyx, n.diameter_mm, label=n.label, name=f"nodule {n.label}")
        for n in p.nodules
    )
    case = ScanCase(tuple(ct.spacing_mm), scored, refs, (), cands.labels, p.labels)
    ref_hit, ignored = _outcomes(case, len(scored))
    return CaseTable(
        f"phantom-{seed}",
        f"phantom-{seed}",
        "phantom",
        True,
        cands.matrix(),
        ref_hit,
        ignored,
        len(refs),
        sec,
        **_where(cands, ct),
    )


def real_table(segmenter, chest, ct=None, keep=None) -> CaseTable:
    """The candidate table of a real chest (``ct``: its loaded CT, else loaded here; ``keep``:
    a list that receives the Segmentation)."""
    from napari_lungkd.io import load_ct
    from src_training.real_chests import UNMARKED_MASS_MM, truth_case

    ct = load_ct(chest.path()) if ct is None else ct
    cands, scored, sec = _candidates(segmenter, ct, keep)
    case = truth_case(chest, ct, scored, cands.labels)
    ref_hit, ignored = _outcomes(case, len(scored))
    x = cands.matrix()
    if chest.marks == "unmarked" and len(x):
        big = x[:, FEATURE_NAMES.index("equivalent_diameter_mm")] > UNMARKED_MASS_MM
        ignored = ignored | (big & (ref_hit < 0))
    return CaseTable(
        chest.name,
        chest.patient,
        "real",
        chest.trainable,
        x,
        ref_hit,
        ignored,
        len(case.references),
        sec,
        **_where(cands, ct),
    )


def inserted_table(segmenter, chest, seed: int, n_nodules: int = 5) -> CaseTable:
    """A real chest with synthetic nodules inserted (seeded): real vessels around true nodules.
    The host's own marked lesions and nodules are ignored (neither positives nor negatives)."""
    from napari_lungkd.io import load_ct
    from napari_lungkd.phantom import insert_nodules
    from napari_lungkd.scoring.hits import IrrelevantFinding, Reference, ScanCase
    from src_training.real_chests import lesion_mask

    host = load_ct(chest.path())
    marked = lesion_mask(chest, host)
    ins = insert_nodules(host, seed, n_nodules=n_nodules, ignore=marked)
    ct = ins.ct
    cands, scored, sec = _candidates(segmenter, ct)
    refs = tuple(
        Reference(n.centre_zyx, n.diameter_mm, label=i, name=f"inserted {i}")
        for i, n in enumerate(ins.nodules, start=1)
    )
    irrelevant, irr_labels = (), None
    if ins.ignore.any():
        zyx = np.argwhere(ins.ignore).mean(axis=0)
        irrelevant = (
            IrrelevantFinding(tuple(float(v) for v in zyx), 1.0, label=1, kind="host lesion"),
        )
        irr_labels = ins.ignore.astype(np.uint8)
    case = ScanCase(
        tuple(ct.spacing_mm), scored, refs, irrelevant, cands.labels, ins.labels, irr_labels
    )
    ref_hit, ignored = _outcomes(case, len(scored))
    name = f"{chest.name}+ins{seed}"
    return CaseTable(
        name,
        chest.patient,
        "inserted",
        chest.trainable,
        cands.matrix(),
        ref_hit,
        ignored,
        len(refs),
        sec,
        **_where(cands, ct),
    )


def collect(
    model: str,
    phantom_seeds,
    chests,
    cache: Path,
    device: str = "cpu",
    log=print,
    inserted_per_host: int = 0,
) -> list[CaseTable]:
    """Tables of every case, from the cache where present (resumable)."""
    from napari_lungkd.inference import Segmenter

    segmenter = None
    out = []
    jobs = [("phantom", s) for s in phantom_seeds] + [("real", c) for c in chests]
    jobs += [
        ("inserted", (c, INSERT_SEED_BASE + k)) for c in chests for k in range(inserted_per_host)
    ]
    for kind, item in jobs:
        if kind == "phantom":
            name = f"phantom-{item}"
        elif kind == "real":
            name = item.name
        else:
            name = f"{item[0].name}+ins{item[1]}"
        path = cache / model / f"{name}.npz"
        if path.exists():
            out.append(CaseTable.load(path))
            continue
        if segmenter is None:
            segmenter = Segmenter(model, device=device, classifier="off")  # the U-Net alone
        t0 = time.perf_counter()
        if kind == "phantom":
            table = phantom_table(segmenter, item)
        elif kind == "real":
            table = real_table(segmenter, item)
        else:
            table = inserted_table(segmenter, *item)
        table.save(path)
        y = table.y
        log(
            f"{name}: {len(y)} candidates, {int((y == 1).sum())} on nodules ({table.n_references} nodules), "
            f"{int((y == 0).sum())} false, {int((y == -1).sum())} ignored, {time.perf_counter() - t0:.1f} s"
        )
        out.append(table)
    return out


def _seeds(text: str) -> list[int]:
    if not text:
        return []
    a, _, b = text.partition("-")
    return [PHANTOM_SEED_BASE + i for i in range(int(a), int(b or a) + 1)]


def main(argv=None) -> int:
    from src_training.real_chests import available

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="student")
    ap.add_argument(
        "--phantoms", default="0-23", help="phantom case range, e.g. 0-23 (seeds 5000+)"
    )
    ap.add_argument("--real", default="all", help="'all', 'none' or comma-separated chest names")
    ap.add_argument("--cache", type=Path, default=Path("data/fp_cache"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--inserted", type=int, default=2, help="cases per real host with inserted nodules"
    )
    args = ap.parse_args(argv)
    chests = available()
    if args.real == "none":
        chests = []
    elif args.real != "all":
        wanted = set(args.real.split(","))
        chests = [c for c in chests if c.name in wanted]
    collect(
        args.model,
        _seeds(args.phantoms),
        chests,
        args.cache,
        args.device,
        log=lambda s: print(s, flush=True),
        inserted_per_host=args.inserted,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
