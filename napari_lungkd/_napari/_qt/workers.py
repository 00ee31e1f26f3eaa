"""Run a core progress generator in a napari thread worker, with a Cancel that really stops it.

Every long core job is a generator that yields :class:`~napari_lungkd.progress.Progress` and
returns its result. :func:`start_job` drives it with :func:`napari.qt.threading.create_worker`:
each yielded Progress reaches ``on_progress`` in the GUI thread, the returned value reaches
``on_done``. :meth:`Job.cancel` calls ``worker.quit()`` (the worker stops before the next step) and,
once the worker has stopped, *closes* the core generator, so its ``finally`` blocks run and no
half result is delivered. Errors are reported here, where the job runs (building the model
included: nothing runs before the worker drives the generator): :func:`report_error` shows one
sentence (a :class:`~napari_lungkd.errors.LungKDError`'s own, else the type and message) and writes
the traceback to the ``napari_lungkd`` log; nothing is re-raised into the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error

from napari_lungkd.errors import LungKDError

logger = logging.getLogger("napari_lungkd")


class JobFailed:
    """What the worker returns instead of raising: the exception the core job raised.

    Raising out of the worker would reach napari's error relay (a notification with a traceback
    button) and superqt's re-raise into the event loop; superqt would even turn a RuntimeError
    (what torch raises) into a mere warning. Returning it keeps the one-sentence path.
    """

    def __init__(self, exc: BaseException):
        self.exc = exc


def _drive(job: Generator) -> Generator:
    """Re-yield ``job``'s progress and return its result (the worker's generator function)."""
    try:
        result = yield from job
    except Exception as exc:  # noqa: BLE001 - handed to the GUI thread as a value (with its traceback)
        return JobFailed(exc)
    return result


def describe_error(exc: BaseException) -> str:
    """One sentence for the user: a LungKDError's own message, else the type and message."""
    if isinstance(exc, LungKDError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def report_error(exc: BaseException, doing: str = "napari-lungkd") -> str:
    """Show ``exc`` as one sentence and log its traceback (logger ``napari_lungkd``); the sentence.

    Bad input (a LungKDError) is logged at INFO, so no traceback reaches the terminal; anything
    else is a bug and is logged as an ERROR."""
    message = describe_error(exc)
    level = logging.INFO if isinstance(exc, LungKDError) else logging.ERROR
    logger.log(level, "%s failed: %s", doing, message, exc_info=exc)
    show_error(message)
    return message


class Job:
    """One running core generator; ``state`` is running, done, cancelled or failed."""

    def __init__(
        self,
        job: Generator,
        on_progress: Callable[[Any], None] | None = None,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_end: Callable[[Job], None] | None = None,
    ):
        self._gen = job
        self.state = "running"
        self.error: str | None = None
        self._on_done, self._on_error, self._on_end = on_done, on_error, on_end
        self.worker = create_worker(_drive, job, _start_thread=False, _ignore_errors=True)
        if on_progress is not None:
            self.worker.yielded.connect(on_progress)
        self.worker.returned.connect(self._returned)
        self.worker.errored.connect(self._errored)
        self.worker.aborted.connect(self._aborted)
        self.worker.finished.connect(self._finished)

    def start(self) -> Job:
        self.worker.start()
        return self

    @property
    def is_running(self) -> bool:
        return self.state == "running"

    def cancel(self) -> None:
        """Ask the worker to stop before its next step; the generator is closed once it has."""
        if self.state == "running":
            self.state = "cancelling"
            self.worker.quit()

    # --- signal handlers (GUI thread) ---
    def _returned(self, value: Any) -> None:
        if self.state == "cancelling":  # finished its last step before it saw the request
            self.state = "cancelled"
            return
        if isinstance(value, JobFailed):
            self._report(value.exc)
            return
        self.state = "done"
        if self._on_done is not None:
            try:
                self._on_done(value)
            except Exception as exc:  # noqa: BLE001 - never crash the viewer's event loop
                self._report(exc)

    def _errored(self, exc: BaseException) -> None:
        self._report(exc)

    def _report(self, exc: BaseException) -> None:
        self.state = "failed"
        self.error = report_error(exc, "napari-lungkd job")
        if self._on_error is not None:
            self._on_error(self.error)

    def _aborted(self) -> None:
        self.state = "cancelled"
        self._gen.close()  # the worker thread has left the generator: run its finally blocks

    def _finished(self) -> None:
        if self.state == "cancelling":
            self.state = "cancelled"
        if self.state == "cancelled":
            self._gen.close()
        if self._on_end is not None:
            self._on_end(self)


def start_job(job: Generator, **callbacks) -> Job:
    """Start ``job`` (a Progress generator) in a thread worker; see :class:`Job`."""
    return Job(job, **callbacks).start()
