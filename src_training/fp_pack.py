"""The candidate tables of one U-Net in one file small enough to carry to a GPU machine.

    python -m src_training.fp_pack pack --cache data/fp_cache_new --model student --out data/fp_pack_student.zip
    python -m src_training.fp_pack unpack data/fp_pack_student.zip --cache /tmp/fpc --workers 16

A GPU machine gets the working tree and at most 64 MiB besides (:data:`LIMIT_BYTES`), while the
3-D patches of the phantom tables alone weigh hundreds of MB (every false candidate of a phantom
is a 64 kB patch). The phantoms, though, are seeded: :func:`~src_training.fp_data.phantom_case`
makes the same CT again anywhere. So a pack holds every table (features, labels, centres) and the
patches of the real-anatomy tables (real chests, which do not travel), but for a phantom table only
the SHA-256 of its patches; :func:`unpack` makes each phantom again, cuts its patches at the stored
centres and compares them with that hash, and, where another numpy or scipy makes the phantom
a little differently, with each patch's stored mean and standard deviation (:data:`TOLERANCE_HU`).
A phantom whose patches differ more is refused, not used.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from napari_lungkd.errors import TrainingError
from src_training.fp_data import CaseTable, phantom_case

LIMIT_BYTES = 60 * 2**20
"""A pack must leave room for the working tree in the 64 MiB a GPU call carries."""
TOLERANCE_HU = 2.0
"""How far a patch made again may move in mean and standard deviation (HU) and still be used."""


def patches_sha256(patches: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(patches, dtype=np.int16).tobytes()).hexdigest()


def _table_bytes(table: CaseTable) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **table.arrays())
    return buf.getvalue()


def _moments(patches: np.ndarray) -> np.ndarray:
    flat = np.asarray(patches, np.float64).reshape(len(patches), -1)
    return np.stack([flat.mean(axis=1), flat.std(axis=1)], axis=1).astype(np.float32)


def pack(tables: list[CaseTable], out: Path, limit: int = LIMIT_BYTES) -> dict:
    """Write ``tables`` to the zip ``out`` (module doc); refuses a pack over ``limit`` bytes."""
    hashes = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for t in tables:
            if t.patches is None or t.centres is None:
                raise TrainingError(f"{t.name} has no patches: rebuild its table with fp_data")
            if t.kind == "phantom":
                hashes[t.name] = patches_sha256(t.patches)
                z.writestr(f"{t.name}.moments.npy", _npy(_moments(t.patches)))
                t = replace(t, patches=None)
            z.writestr(f"{t.name}.npz", _table_bytes(t))
        z.writestr("phantom_patches_sha256.txt", "".join(f"{k} {v}\n" for k, v in hashes.items()))
    size = tmp.stat().st_size
    if size > limit:
        tmp.unlink()
        raise TrainingError(
            f"The pack would weigh {size / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB a GPU call "
            "may carry: pack fewer real-anatomy tables."
        )
    tmp.replace(out)
    return {"tables": len(tables), "phantoms": len(hashes), "bytes": size}


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _remake(args) -> tuple[str, np.ndarray]:
    from napari_lungkd.inference.candidate_patches import candidate_patches

    name, centres = args
    seed = int(name.rsplit("-", 1)[1])
    ct = phantom_case(seed).to_ct()
    return name, candidate_patches(ct.hu, ct.spacing_mm, centres)


def unpack(path: Path, cache: Path, model: str, workers: int = 1, log=print) -> list[Path]:
    """The tables of the pack ``path`` as ``<cache>/<model>/<name>.npz``, phantom patches made
    again and checked against their hashes (module doc)."""
    with zipfile.ZipFile(path) as z:
        lines = z.read("phantom_patches_sha256.txt").decode().split("\n")
        hashes = dict(line.split(" ") for line in lines if line)
        moments = {n: np.load(io.BytesIO(z.read(f"{n}.moments.npy"))) for n in hashes}
        tables = {}
        for info in z.infolist():
            if info.filename.endswith(".npz"):
                tables[info.filename[:-4]] = CaseTable.load(io.BytesIO(z.read(info)))
    jobs = [(name, tables[name].centres) for name in hashes]
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        done = pool.map(_remake, jobs) if pool else map(_remake, jobs)
        for name, patches in done:
            same = patches_sha256(patches) == hashes[name]
            drift = float(np.abs(_moments(patches) - moments[name]).max()) if len(patches) else 0.0
            if not same and drift > TOLERANCE_HU:
                raise TrainingError(
                    f"{name}: the phantom made here gives other patches than where it was packed "
                    f"(moved up to {drift:.1f} HU: another numpy or scipy?); its table is not used."
                )
            tables[name] = replace(tables[name], patches=patches)
            how = "identical" if same else f"within {drift:.2f} HU"
            log(f"{name}: {len(patches)} patches made again, {how}")
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    written = []
    for name, t in tables.items():
        dest = cache / model / f"{name}.npz"
        t.save(dest)
        written.append(dest)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--cache", type=Path, default=Path("data/fp_cache_new"))
    p.add_argument("--model", default="student")
    p.add_argument("--out", type=Path, required=True)
    u = sub.add_parser("unpack")
    u.add_argument("pack", type=Path)
    u.add_argument("--cache", type=Path, required=True)
    u.add_argument("--model", default="student")
    u.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        from src_training.fp_data import load_tables

        info = pack(load_tables(args.cache, args.model), args.out)
        print(
            f"wrote {args.out}: {info['tables']} tables ({info['phantoms']} phantoms made again "
            f"on unpacking), {info['bytes'] / 2**20:.1f} MiB"
        )
    else:
        n = len(
            unpack(
                args.pack, args.cache, args.model, args.workers, log=lambda s: print(s, flush=True)
            )
        )
        print(f"unpacked {n} tables into {args.cache / args.model}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
