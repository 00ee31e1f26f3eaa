"""Time LIDC XML work: parse, rasterise and consensus on LIDC-IDRI-0001, and the whole TCIA corpus.

    .venv/bin/python bench/lidc.py [--realdata ../shared/realdata] [--runs 9] [--no-corpus]
                                   [--vs-pylidc N]

Prints a table. Stages on LIDC-IDRI-0001 (069.xml, four readers, one nodule): parse only; parse +
rasterise on the XML-only grid; the same + clustering + consensus (``annotate``); and, when the
DICOM series is there, ``annotate`` on the real CT's grid (CT loading not timed). The corpus line
parses every member of ``tcia-lidc-xml-all.tar.xz`` straight from the archive (decompression
included) and counts parsed and refused files. ``--vs-pylidc N`` compares every Nth corpus file
with pylidc's database (per-annotation voxel counts; nodules as (readers, consensus voxels)).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def median_time(fn, runs: int) -> tuple[float, float]:
    fn()  # warm imports and caches
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def import_pylidc():
    """pylidc 0.2.3 needs np.int/np.float and pkg_resources: supply them (see test_lidc_pylidc)."""
    import importlib.util
    import types

    import numpy as np

    spec = importlib.util.find_spec("pylidc")
    if spec is None:
        raise SystemExit("--vs-pylidc needs pylidc (pip install pylidc)")
    for name, value in (("int", int), ("float", float)):
        if name not in np.__dict__:
            setattr(np, name, value)
    if importlib.util.find_spec("pkg_resources") is None:
        stub = types.ModuleType("pkg_resources")
        folder = os.path.dirname(spec.origin)
        stub.resource_filename = lambda package, name: os.path.join(folder, name)
        sys.modules["pkg_resources"] = stub
    import pylidc
    from pylidc.utils import consensus

    return pylidc, consensus


def compare_with_pylidc(corpus: Path, every: int) -> None:
    """Per-annotation voxels and (readers, consensus voxels) per nodule vs pylidc's database."""
    from napari_lungkd.errors import LidcXmlError
    from napari_lungkd.lidc import annotate

    pl, consensus = import_pylidc()
    n = same_ann = same_nod = 0
    diffs = []
    with tarfile.open(corpus) as tf:
        members = sorted((m for m in tf if m.isfile()), key=lambda m: m.name)[::every]
        for member in members:
            try:
                ours = annotate(tf.extractfile(member).read())
            except LidcXmlError:
                continue
            uid = ours.read.series_uid
            scan = pl.query(pl.Scan).filter(pl.Scan.series_instance_uid == uid).first()
            if scan is None:
                continue
            n += 1
            theirs = [int(a.boolean_mask().sum()) for a in scan.annotations]
            same_ann += [a.voxels for a in ours.annotations] == theirs
            clusters = scan.cluster_annotations(verbose=False)
            t = sorted((len(c), int(consensus(c, clevel=0.5)[0].sum())) for c in clusters)
            o = sorted((x.n_readers, x.consensus_voxels) for x in ours.nodules)
            same_nod += o == t
            if o != t:
                diffs.append(f"  {member.name}: ours {o} pylidc {t}")
    print(
        f"vs pylidc, every {every}th file: {n} CT reads; per-annotation voxels equal in {same_ann}; "
        f"nodules + consensus voxels equal in {same_nod}"
    )
    print("\n".join(diffs))


def main(argv=None) -> int:
    from napari_lungkd.errors import LidcXmlError
    from napari_lungkd.lidc import annotate, parse_lidc_xml, rasterise_read, read_lidc_xml, xml_grid

    default = Path(os.environ.get("LUNGKD_REALDATA", REPO.parent / "shared" / "realdata"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--realdata", type=Path, default=default)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--no-corpus", action="store_true", help="skip the whole-tarball parse")
    ap.add_argument(
        "--vs-pylidc",
        type=int,
        metavar="N",
        help="also compare every Nth corpus file with pylidc's database (slow: ~1 s a file)",
    )
    args = ap.parse_args(argv)

    xml = args.realdata / "lidc_xml" / "selected" / "LIDC-IDRI-0001__185_069.xml"
    if not xml.is_file():
        print(f"{xml} not found (set --realdata)", file=sys.stderr)
        return 1
    rows = []

    def parse_and_raster():
        read = read_lidc_xml(xml)
        return rasterise_read(read, xml_grid(read))

    rows.append(("0001 parse", *median_time(lambda: read_lidc_xml(xml), args.runs)))
    rows.append(("0001 parse + rasterise (XML grid)", *median_time(parse_and_raster, args.runs)))
    rows.append(
        ("0001 parse + rasterise + consensus", *median_time(lambda: annotate(xml), args.runs))
    )
    series = sorted((args.realdata / "LIDC-IDRI-0001").rglob("069.xml"))
    if series:
        from napari_lungkd.io import load_ct

        ct = load_ct(series[0].parent)
        rows.append(
            (
                "0001 annotate on the real CT grid",
                *median_time(lambda: annotate(series[0], ct=ct), args.runs),
            )
        )
    corpus = args.realdata / "lidc_xml" / "tcia-lidc-xml-all.tar.xz"
    counts = None
    if corpus.is_file() and not args.no_corpus:
        t0 = time.perf_counter()
        parsed = refused = 0
        with tarfile.open(corpus) as tf:
            for member in tf:
                if not member.isfile():
                    continue
                try:
                    parse_lidc_xml(tf.extractfile(member), name=member.name)
                    parsed += 1
                except LidcXmlError:
                    refused += 1
        wall = time.perf_counter() - t0
        rows.append(("TCIA corpus parse (1 run, from .tar.xz)", wall, wall))
        counts = (parsed, refused)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; median of {args.runs} runs"
    )
    print(f"{'stage':<42} {'median s':>9} {'min s':>9}")
    for name, med, best in rows:
        print(f"{name:<42} {med:>9.3f} {best:>9.3f}")
    if counts:
        print(f"corpus: {counts[0]} CT reads parsed, {counts[1]} refused (chest radiograph)")
    if args.vs_pylidc and corpus.is_file():
        compare_with_pylidc(corpus, args.vs_pylidc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
