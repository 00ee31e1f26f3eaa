"""Training code for napari-lungkd: teacher, baseline student and distilled student.

Run as modules from the repository root, e.g. ``python -m src_training.train CONFIG``. The plugin
never imports this package; it only loads the weights files that ``src_training.export`` writes.
"""

from __future__ import annotations

import sys


def run_main(main) -> None:
    """Run a script's ``main()``; a refusal (LungKDError) is one line on stderr and exit status 2."""
    from napari_lungkd.errors import LungKDError

    try:
        code = main()
    except LungKDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    raise SystemExit(code)
