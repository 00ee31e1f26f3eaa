"""``lungkd phantom``: write N synthetic LIDC-style cases (DICOM + XML + truth NIfTI + facts JSON)."""

from __future__ import annotations

import time
from pathlib import Path

from napari_lungkd.cli._common import add_json_option, run_with_tqdm, write_json
from napari_lungkd.progress import Progress


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "phantom",
        help="write synthetic chest CT cases with LIDC-format reader annotations",
        description="Write N seeded synthetic chest CT cases: a DICOM series, an LIDC XML from "
        "simulated readers, the true nodule labels (NIfTI) and a JSON of nodule facts per case.",
    )
    p.add_argument(
        "--n-cases", type=int, default=1, metavar="N", help="number of cases (default 1)"
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (one sub-folder per case)"
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="S", help="seed of the first case; case i uses S+i"
    )
    p.add_argument("--size", type=int, default=512, help="in-plane matrix (default 512)")
    p.add_argument(
        "--n-slices",
        type=int,
        default=None,
        metavar="K",
        help="slices per case (default: from spacing)",
    )
    p.add_argument(
        "--n-readers",
        type=int,
        default=4,
        choices=range(1, 5),
        metavar="{1..4}",
        help="simulated radiologists whose outlines go into each LIDC XML (default 4)",
    )
    p.add_argument(
        "--host",
        metavar="PATH",
        default=None,
        help="insert synthetic nodules into this real chest CT (DICOM folder or image file) "
        "instead of generating whole phantoms; case i uses seed S+i",
    )
    p.add_argument(
        "--host-ignore",
        metavar="MASKFILE",
        default=None,
        help="mask of the host's own lesions (on the host's grid): no nodule goes there, and it "
        "is written as ignore.nii.gz",
    )
    p.add_argument(
        "--n-nodules",
        type=int,
        default=None,
        metavar="K",
        help="nodules per case (default: drawn; --host: 2-6, phantom: 0-6)",
    )
    p.add_argument(
        "--varied",
        action="store_true",
        help="randomise the scanner (kernel, noise level and texture, HU offset) and the lung and fat "
        "HU per case, for training data (default: the classic phantom of the sample)",
    )
    add_json_option(p)
    p.set_defaults(func=run)


def iter_cases(
    n_cases: int, out, seed: int, size: int, n_slices, n_readers: int, n_nodules=None, varied=False
):
    """Generator: yields Progress per case, returns a list of per-case summaries."""
    from napari_lungkd.phantom import make_phantom, write_case

    rows = []
    for i in range(n_cases):
        yield Progress(i, n_cases, "cases", f"seed {seed + i}")
        t0 = time.perf_counter()
        ph = make_phantom(
            seed + i, size=size, n_slices=n_slices, n_nodules=n_nodules, varied=varied
        )
        t1 = time.perf_counter()
        paths = write_case(ph, out, n_readers=n_readers)
        t2 = time.perf_counter()
        rows.append(
            {
                "seed": seed + i,
                "patient_id": ph.patient_id,
                "shape_zyx": list(ph.shape),
                "spacing_mm": list(ph.spacing_mm),
                "n_nodules": len(ph.nodules),
                "nodules": [n.to_dict() for n in ph.nodules],
                "paths": {k: str(v) for k, v in paths.items()},
                "seconds_generate": round(t1 - t0, 3),
                "seconds_write": round(t2 - t1, 3),
            }
        )
    yield Progress(n_cases, n_cases, "cases")
    return rows


def iter_host_cases(n_cases: int, out, seed: int, host, ignore, n_readers: int, n_nodules=None):
    """Generator: nodules inserted into one real CT, one case per seed; returns per-case rows."""
    from napari_lungkd.io.load import load_ct
    from napari_lungkd.io.masks import read_mask
    from napari_lungkd.phantom.host_case import write_inserted_case
    from napari_lungkd.phantom.insert import insert_nodules

    yield Progress(0, n_cases, "cases", "loading the host")
    ct = load_ct(host)
    mask = read_mask(ignore, ct) if ignore else None
    rows = []
    for i in range(n_cases):
        yield Progress(i, n_cases, "cases", f"seed {seed + i}")
        t0 = time.perf_counter()
        ins = insert_nodules(ct, seed + i, n_nodules=n_nodules, ignore=mask)
        t1 = time.perf_counter()
        paths = write_inserted_case(ins, ct, out, seed + i, n_readers=n_readers)
        t2 = time.perf_counter()
        rows.append(
            {
                "seed": seed + i,
                "patient_id": paths["case_dir"].name,
                "host": str(host),
                "shape_zyx": list(ct.shape),
                "spacing_mm": list(ct.spacing_mm),
                "n_nodules": len(ins.nodules),
                "nodules": [n.to_dict() for n in ins.nodules],
                "paths": {k: str(v) for k, v in paths.items()},
                "seconds_generate": round(t1 - t0, 3),
                "seconds_write": round(t2 - t1, 3),
            }
        )
    yield Progress(n_cases, n_cases, "cases")
    return rows


def run(args) -> int:
    from napari_lungkd import __version__

    if args.n_cases < 1:
        raise SystemExit("lungkd phantom: error: --n-cases must be at least 1")
    if args.size < 32:
        raise SystemExit("lungkd phantom: error: --size must be at least 32")
    if args.n_nodules is not None and not 0 <= args.n_nodules <= 60:
        raise SystemExit("lungkd phantom: error: --n-nodules must be 0-60")
    if args.host_ignore and not args.host:
        raise SystemExit("lungkd phantom: error: --host-ignore needs --host")
    out = Path(args.out)
    start = time.perf_counter()
    if args.host:
        cases = iter_host_cases(
            args.n_cases,
            out,
            args.seed,
            args.host,
            args.host_ignore,
            args.n_readers,
            args.n_nodules,
        )
    else:
        cases = iter_cases(
            args.n_cases,
            out,
            args.seed,
            args.size,
            args.n_slices,
            args.n_readers,
            args.n_nodules,
            args.varied,
        )
    rows = run_with_tqdm(cases, desc="phantom")
    total = time.perf_counter() - start
    per_case = total / len(rows)
    print(f"wrote {len(rows)} case(s) to {out} in {total:.1f} s ({per_case:.2f} s per case)")
    for r in rows:
        print(
            f"  {r['patient_id']}: {r['shape_zyx']} voxels, {r['n_nodules']} nodule(s) -> {r['paths']['case_dir']}"
        )
    if args.json:
        write_json(
            args.json,
            {
                "cases": rows,
                "seconds_total": round(total, 3),
                "seconds_per_case": round(per_case, 3),
                "provenance": {
                    "command": "lungkd phantom",
                    "version": __version__,
                    "size": args.size,
                    "host": args.host,
                    "host_ignore": args.host_ignore,
                },
            },
        )
    return 0
