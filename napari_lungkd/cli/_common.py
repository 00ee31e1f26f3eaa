"""What every sub-command shares: --json, output checks before the work, warnings on stderr,
progress bars on a terminal."""

from __future__ import annotations

import sys
from pathlib import Path

from napari_lungkd.errors import ExportError
from napari_lungkd.files import write_json
from napari_lungkd.progress import run_with_tqdm

__all__ = [
    "add_json_option",
    "check_outputs",
    "plural",
    "print_warnings",
    "run_with_tqdm",
    "write_json",
]

OUTPUT_DIR_OPTIONS = ("out",)
"""Parsed options that name an output folder (``--out``)."""
OUTPUT_FILE_OPTIONS = ("json", "masks", "screenshot", "plot")
INPUT_OPTIONS = ("input", "xml", "ct", "lidc", "source", "path")
"""Parsed options that name an input: an output file may never be one of them."""
"""Parsed options that name an output file (``--json``, ``--masks``, ``--screenshot``)."""


def add_json_option(parser) -> None:
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    if (
        "--overwrite" not in parser._option_string_actions
    ):  # an existing --json file is kept unless asked
        parser.add_argument(
            "--overwrite", action="store_true", help="replace an existing --json file"
        )


def check_outputs(args) -> None:
    """Refuse, before any work, every output path of a command that cannot be written: one
    :class:`~napari_lungkd.errors.ExportError` sentence (``main`` turns it into exit 2)."""
    from napari_lungkd.files import check_output_dir, check_output_file

    for name in OUTPUT_DIR_OPTIONS:
        value = getattr(args, name, None)
        if value:
            check_output_dir(value, what=f"--{name.replace('_', '-')}")
    inputs = [
        Path(v).expanduser().resolve() for n in INPUT_OPTIONS if (v := getattr(args, n, None))
    ]
    for name in OUTPUT_FILE_OPTIONS:
        value = getattr(args, name, None)
        if not value:
            continue
        what = f"--{name.replace('_', '-')}"
        target = Path(value).expanduser().resolve()
        # never onto an input (`segment scan.nii.gz --json scan.nii.gz` would turn the CT into JSON),
        # nor into an input folder's files by accident
        if target in inputs:
            raise ExportError(f"{what} {value} is an input of this command; choose another file.")
        check_output_file(value, what=what)  # a folder, an unwritable place: its own sentence
        if target.is_file() and not getattr(args, "overwrite", False):
            hint = "pass --overwrite to replace it, or " if hasattr(args, "overwrite") else ""
            raise ExportError(f"{what} {value} already exists; {hint}choose another file.")


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 nodule``, ``2 nodules`` (``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def print_warnings(warnings, where: str = "") -> None:
    """Each warning on its own line on stderr: ``warning: <where>: <text>``."""
    prefix = f"warning: {where}: " if where else "warning: "
    for text in warnings:
        print(prefix + " ".join(str(text).split()), file=sys.stderr)
