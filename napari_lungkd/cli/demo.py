"""``lungkd demo``: open napari with the sample chest CT, dock the widget and segment it.

Without trained weights (``resolve_weights`` fails) the viewer still opens with the sample case and
one clear line says why nothing was segmented. ``LUNGKD_WEIGHTS_DIR`` points the weights lookup at
another folder (tests use it for small random-weight models). The napari side lives in
:mod:`napari_lungkd._napari._qt.demo_viewer`.
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="open napari with the sample chest CT and segment it",
        description="Open napari with the bundled synthetic chest CT, dock the Lung nodules widget "
        "and run the student (or teacher) on it.",
    )
    p.add_argument(
        "--model", default="student", choices=("student", "teacher"), help="model to run"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--no-segment", action="store_true", help="only open the sample case")
    p.add_argument(
        "--teacher",
        action="store_true",
        help="also run the teacher and show student | teacher side by side on the largest nodule",
    )
    p.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the window when ready")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --screenshot file")
    p.add_argument(
        "--quit-after-screenshot",
        action="store_true",
        help="close napari once the screenshot is saved",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from napari_lungkd._napari._qt.demo_viewer import run_demo

    return run_demo(args)
