"""The ``lungkd`` command: one sub-command per module in :mod:`napari_lungkd.cli`.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func=run`` (a callable taking the parsed arguments and returning an exit code). Heavy imports
(torch, SimpleITK) happen inside ``run`` so that ``lungkd --help`` is instant. Every output path
(``--out``, ``--json``, ``--masks``...) is checked before ``run`` starts
(:func:`napari_lungkd.cli._common.check_outputs`). Every
:class:`~napari_lungkd.errors.LungKDError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from napari_lungkd import __version__
from napari_lungkd.errors import LungKDError

COMMAND_MODULES = ("phantom", "lidc", "segment", "evaluate", "weights", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lungkd",
        description="Lung-nodule segmentation in chest CT with a knowledge-distilled U-Net.",
    )
    parser.add_argument("--version", action="version", version=f"napari-lungkd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"napari_lungkd.cli.{name}")
        except ModuleNotFoundError as exc:  # a command whose module is not there yet
            if exc.name != f"napari_lungkd.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        from napari_lungkd.cli._common import check_outputs

        check_outputs(args)
        return int(args.func(args) or 0)
    except LungKDError as exc:
        print(f"lungkd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lungkd {args.command}: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
