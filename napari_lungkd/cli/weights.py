"""``lungkd weights list|install PATH_OR_URL|verify [PATH]``: the weights files napari-lungkd sees."""

from __future__ import annotations

import sys

from napari_lungkd.cli._common import add_json_option, write_json


def register(subparsers) -> None:
    p = subparsers.add_parser("weights", help="list, install or verify model weights files")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="weights in the user folder, bundled, and in the registry")
    add_json_option(ls)
    ins = sub.add_parser(
        "install", help="verify a weights file (path or URL) and copy it to the user folder"
    )
    ins.add_argument("source", metavar="PATH_OR_URL")
    ins.add_argument("--sha256", help="the SHA-256 the file must have (required trust for URLs)")
    ins.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an installed weights file of the same model that differs (and an existing --json file)",
    )
    add_json_option(ins)
    ver = sub.add_parser(
        "verify", help="check weights files (content hash, pinned hash, tensor shapes)"
    )
    ver.add_argument(
        "path", nargs="?", help="a weights file (default: every installed or bundled file)"
    )
    add_json_option(ver)
    p.set_defaults(func=run)


def run(args) -> int:
    from napari_lungkd.errors import LungKDError
    from napari_lungkd.models import weights as w

    if args.action == "list":
        rows = w.list_weights()
        if not rows:
            print(
                f"no weights installed (user folder: {w.user_weights_dir()}); train them with src_training and `lungkd weights install FILE`"
            )
        for r in rows:
            r["description"] = _describe(r)
        print(format_table(rows), end="")
        if args.json:
            write_json(args.json, {"user_dir": str(w.user_weights_dir()), "weights": rows})
        return 0
    if args.action == "install":
        from napari_lungkd.files import check_output_dir

        check_output_dir(w.user_weights_dir(), what="the weights folder")
        info = w.install(args.source, sha256=args.sha256, overwrite=args.overwrite)
        print(
            f"installed {info.spec.name} ({info.spec.encoder}) -> {info.path} sha256 {info.sha256}"
        )
        if args.json:
            write_json(args.json, info.summary())
        return 0
    # verify
    paths = (
        [args.path]
        if args.path
        else [r["path"] for r in w.list_weights() if r["where"] in ("user", "bundled")]
    )
    results, failed = [], 0
    for path in paths:
        try:
            info = w.verify(path)
            results.append({**info.summary(), "ok": True})
            print(f"OK   {path}  {info.spec.name} ({info.spec.encoder})  sha256 {info.sha256}")
        except LungKDError as exc:
            failed += 1
            results.append({"path": str(path), "ok": False, "error": str(exc)})
            print(f"lungkd weights: error: {exc}", file=sys.stderr)
    if not paths:
        print("no weights files to verify")
    if args.json:
        write_json(args.json, {"files": results, "failed": failed})
    return 2 if failed else 0


def _describe(row: dict) -> str:
    """What the file was trained on and how it scores (a registry entry not fetched: its note)."""
    from pathlib import Path

    from napari_lungkd.models.weights_card import describe_metadata, read_header

    path = Path(row["path"]) if row["where"] in ("user", "bundled") else None
    metadata = read_header(path) if path is not None and path.is_file() else {}
    return describe_metadata(row["name"], metadata, row["sha256"]).split(": ", 1)[-1]


def format_table(rows: list[dict]) -> str:
    """NAME WHERE SHA-256 PATH columns, each as wide as its longest cell, then the description
    of each file on the line below it (indented)."""
    head = {"name": "NAME", "where": "WHERE", "sha256": "SHA-256", "path": "PATH"}
    cells = [head] + [{**r, "sha256": r["sha256"][:12]} for r in rows]
    widths = {k: max(len(str(c[k])) for c in cells) for k in ("name", "where", "sha256")}
    lines = []
    for i, c in enumerate(cells):
        lines.append(
            "  ".join(str(c[k]).ljust(widths[k]) for k in ("name", "where", "sha256"))
            + "  "
            + str(c["path"])
        )
        if i and c.get("description"):
            lines.append(" " * 4 + c["description"])
    return "\n".join(lines) + "\n"
