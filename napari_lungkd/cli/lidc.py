"""``lungkd lidc XML``: rasterise an LIDC reading XML, cluster the readers, report consensus.

Without ``--ct`` the masks live on the XML-only grid (512x512, the XML's own z values); with
``--ct SERIES`` they are placed on that CT's slices (by SOP UID, else nearest z). ``--json`` writes
``annotations`` (reader, nodule_id, voxels, voxels_per_z keyed by z in mm) and ``nodules``
(annotations as indices into that list, n_readers, consensus_voxels, ...). ``--masks`` writes the
consensus labels in the CT's geometry (needs ``--ct``).
"""

from __future__ import annotations

from napari_lungkd.cli._common import add_json_option, plural, print_warnings, write_json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "lidc",
        help="rasterise an LIDC XML: per-reader masks, nodules, consensus",
        description="Rasterise an LIDC-IDRI reading XML, cluster the readers' outlines into "
        "nodules and report the consensus; also counts the small-nodule marks (< 3 mm, a point "
        "each) and the non-nodule marks. Without --ct the masks are on the XML's own grid "
        "(512 x 512, its z values); with --ct they are placed on that CT's slices.",
    )
    p.add_argument("xml", metavar="XML", help="LIDC reading XML (LidcReadMessage)")
    p.add_argument(
        "--ct", metavar="SERIES", help="the CT (DICOM folder or image file) to place masks on"
    )
    p.add_argument(
        "--level", type=float, default=0.5, help="consensus agreement level in (0, 1] (default 0.5)"
    )
    p.add_argument(
        "--include-edges",
        action="store_true",
        help="count the outline (edge) pixels as nodule (default: excluded, as pylidc)",
    )
    p.add_argument(
        "--rule",
        choices=("pylidc", "luna16"),
        default="pylidc",
        help="which nodules go into --masks: all (pylidc) or those marked by >= 3 readers (luna16)",
    )
    p.add_argument("--masks", metavar="OUT.nii.gz", help="write the consensus labels (needs --ct)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --masks file")
    add_json_option(p)
    p.set_defaults(func=run)


def _table(lidc) -> str:
    sessions = lidc.read.sessions
    small = sum(len(s.small_nodules) for s in sessions)
    non = sum(len(s.non_nodules) for s in sessions)
    lines = [
        f"{lidc.read.source}: {plural(lidc.read.n_readers, 'reader')}, "
        f"{plural(len(lidc.annotations), 'outline')}, {plural(len(lidc.nodules), 'nodule')} "
        f"(grid: {lidc.grid.kind} {'x'.join(map(str, lidc.grid.shape))}); "
        f"also {plural(small, 'small-nodule mark')} (< 3 mm) and "
        f"{plural(non, 'non-nodule mark')}",
        f"{'nodule':>6} {'readers':>8} {'consensus vox':>14} {'diameter mm':>12} {'volume mm3':>11}",
    ]
    for n in lidc.nodules:
        d = f"{n.diameter_mm:.1f}" if n.diameter_mm is not None else "-"
        v = f"{n.volume_mm3:.0f}" if n.volume_mm3 is not None else "-"
        lines.append(f"{n.index + 1:>6} {n.n_readers:>8} {n.consensus_voxels:>14} {d:>12} {v:>11}")
    return "\n".join(lines)


def run(args) -> int:
    from napari_lungkd.errors import ExportError, LidcXmlError
    from napari_lungkd.lidc import annotate

    if not 0.0 < args.level <= 1.0:
        raise LidcXmlError(f"--level {args.level} is not in (0, 1].")
    if args.masks and not args.ct:
        raise ExportError(
            f"{args.masks}: --masks needs --ct, the CT whose geometry the mask file takes."
        )
    if args.masks and args.json:
        from pathlib import Path

        from napari_lungkd.io.sidecar import sidecar_path

        if Path(args.json).expanduser().resolve() == sidecar_path(args.masks).resolve():
            raise ExportError(
                f"--json {args.json} is where the provenance sidecar of --masks goes; "
                "choose another name."
            )
    ct = None
    if args.ct:
        from napari_lungkd.io import load_ct

        ct = load_ct(args.ct)
        print_warnings(ct.warnings, str(args.ct))
    lidc = annotate(args.xml, ct=ct, level=args.level, include_edges=args.include_edges)
    print(_table(lidc))
    print_warnings(lidc.warnings, str(args.xml))
    doc = lidc.to_dict()
    if args.masks:
        from napari_lungkd.io.masks import save_mask

        provenance = {
            "source": "LIDC-IDRI reader consensus",
            "xml": str(args.xml),
            "rule": args.rule,
            "level": args.level,
            "include_edges": args.include_edges,
            "labels": "nodule index + 1",
        }
        files = save_mask(
            args.masks,
            lidc.consensus_labels(args.rule),
            ct,
            provenance=provenance,
            overwrite=args.overwrite,
            labels=True,
        )
        out = files["mask"]
        doc["masks"] = {
            "path": str(out),
            "sidecar": str(files["sidecar"]),
            "rule": args.rule,
            "labels": "nodule index + 1",
        }
        print(f"consensus labels ({args.rule}) written to {out}")
    if args.json:
        write_json(args.json, doc)
    return 0
