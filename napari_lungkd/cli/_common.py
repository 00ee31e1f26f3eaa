"""What every sub-command shares: the --json option and progress bars on a terminal."""

from __future__ import annotations

from napari_lungkd.files import write_json
from napari_lungkd.progress import run_with_tqdm

__all__ = ["add_json_option", "run_with_tqdm", "write_json"]


def add_json_option(parser) -> None:
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
