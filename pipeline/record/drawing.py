"""The report's charts drawn two at a time: one helper process draws a chart while the launcher draws
the next one or builds the report's tables (a chart costs 0.1-1 s of one core; the report is drawn at
the end of a local run, when the workers are done and the second core is idle).

The helper is forked when the run starts (`start`, from `report.preload`), before the runner has
started threads or servers of its own, imports the plotting library meanwhile and then waits; charts
go to it whenever it is idle (`draw`). Where fork is not available, or the helper is gone, every chart
is drawn in the launcher, as before: the PNGs are the same either way.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor

from pipeline.record import report_plots

_helper: ProcessPoolExecutor | None = None
_busy: Future | None = None  # the helper's last task


def start() -> None:
    """Forks the helper (once per process) and has it import the plotting library."""
    global _helper, _busy
    if _helper is not None or "fork" not in multiprocessing.get_all_start_methods():
        return
    _helper = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    _busy = _helper.submit(_import_plotting)


def _import_plotting() -> None:
    report_plots._pyplot()


class Drawing:
    """A chart's PNG: drawn by the helper, or here if the helper failed (`png`)."""

    def __init__(self, future: Future, function, args: tuple):
        self._future, self._function, self._args = future, function, args

    def png(self) -> bytes:
        try:
            return self._future.result()
        except Exception:  # noqa: BLE001 - the helper died (or the chart failed): draw it here
            return self._function(*self._args)


def draw(function, *args) -> bytes | Drawing:
    """`function(*args)` (a chart's PNG bytes): given to the helper when it is idle, else drawn here."""
    global _busy
    if _helper is None or (_busy is not None and not _busy.done()):
        return function(*args)
    try:
        _busy = _helper.submit(function, *args)
    except RuntimeError:  # the helper is broken or shut down
        return function(*args)
    return Drawing(_busy, function, args)
