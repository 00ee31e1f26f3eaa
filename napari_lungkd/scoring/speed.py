"""Speed-up: the one definition of "how many times faster the student is than the teacher".

Like for like: the model stage only (the network, not loading, lung crop or post-processing,
which both models share or pay once), per slice (so two runs over different numbers of slices
still compare). The GUI's comparison table, the CLI's ``--model both`` report and the bench
all call :func:`speedup`.
"""

from __future__ import annotations


def speedup(teacher_timings, student_timings) -> float | None:
    """Teacher model seconds per slice / student model seconds per slice; None when either did
    not run the model (no slice, or no measurable time).

    Both arguments are :class:`~napari_lungkd.inference.segmentation.Timings`."""
    t = teacher_timings.model_seconds_per_slice
    s = student_timings.model_seconds_per_slice
    if t is None or s is None:
        return None
    return t / s
