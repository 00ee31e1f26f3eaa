"""Progress records and helpers that drive a progress generator to its end.

Every long job in napari-lungkd is a generator that yields :class:`Progress` and *returns* its
result (``return value`` inside the generator, i.e. ``StopIteration.value``). The widget runs it in
a napari thread worker; the CLI drives it with a tqdm bar; closing the generator cancels the work.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

ProgressGen = Generator["Progress", None, T]


@dataclass(frozen=True)
class Progress:
    """How far a job has come: ``done`` of ``total`` units in ``stage``."""

    done: int
    total: int
    stage: str
    detail: str = ""

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)

    def __str__(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.stage}: {self.done}/{self.total}{extra}"


def run_to_end(gen: ProgressGen[T], on_progress: Callable[[Progress], Any] | None = None) -> T:
    """Drive a progress generator to its end and return the value it returns."""
    try:
        while True:
            p = next(gen)
            if on_progress is not None:
                on_progress(p)
    except StopIteration as stop:
        return stop.value


def run_with_tqdm(gen: ProgressGen[T], desc: str = "", disable: bool | None = None) -> T:
    """Drive a progress generator with a tqdm bar on stderr (shown only on a terminal)."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = not sys.stderr.isatty()
    bar = tqdm(total=0, desc=desc, disable=disable, unit="step", leave=False)
    stage = None
    try:

        def update(p: Progress) -> None:
            nonlocal stage
            if p.stage != stage:
                stage = p.stage
                bar.reset(total=max(p.total, 1))
                bar.set_description(f"{desc} {p.stage}".strip())
            bar.n = p.done
            if p.detail:
                bar.set_postfix_str(p.detail, refresh=False)
            bar.refresh()

        return run_to_end(gen, update)
    finally:
        bar.close()
