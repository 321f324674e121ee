"""Progress of a local run on a terminal: key x windows done of planned, the rate and the time left.

The total is known before the fits end: the launcher counts the distinct keys when it cheaply can
(`keys_expected`: Parquet files' key column, the DuckDB query), the cut counts each key's windows as it
cuts them, and the total is keys_expected x the windows per key cut so far x the models (exact as soon as
the keys are alike, and exact at the end in any case: the windows planned). Before the first cut the bar
says the rows are being read and grouped.

Beam's local runner reports its counters only when the run ends, and its workers are other
processes. So the stages count into the folder named by $PIPELINE_PROGRESS_DIR, which the launcher
sets for local runs on a terminal (the workers inherit it; on Dataflow it is unset and counting costs
nothing): each process keeps its own totals and writes them, at most twice a second and at the end
of each bundle, to one small file per kind and process. The launcher sums the files once a second
and draws the bar with tqdm.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
import threading
import time

ENV = "PIPELINE_PROGRESS_DIR"
PLANNED, DONE = "planned", "done"  # key x windows cut, key x window fits finished (trained/skipped/failed)
KEYS = "keys"  # keys cut into their windows
READING = "reading and grouping rows"
FITTING = "key x window fits"
FLUSH_SECONDS, POLL_SECONDS = 0.5, 1.0
KEYS_COUNTED_UP_TO = 10_000_000  # the launcher counts the distinct keys up to this many

_lock = threading.Lock()
_counts: dict[str, int] = {}
_counting_into = ""  # the folder _counts belong to: a new run (a new folder) starts from zero
_flushed_at = 0.0


def count(kind: str, n: int = 1, **more: int) -> None:
    """Adds `n` to this process's `kind` total (and each of `more`, kind=n, in the same step); written
    out at most every FLUSH_SECONDS."""
    global _counting_into
    directory = os.environ.get(ENV)
    if not directory:
        return
    with _lock:
        if directory != _counting_into:
            _counts.clear()
            _counting_into = directory
        for name, amount in ((kind, n), *more.items()):
            if amount > 0:
                _counts[name] = _counts.get(name, 0) + amount
        if time.monotonic() - _flushed_at >= FLUSH_SECONDS:
            _write()


def count_key(windows: int) -> None:
    """One key cut into `windows` windows: both counted at once, so the windows per key read true."""
    count(KEYS, 1, **{PLANNED: windows})


def flush() -> None:
    """Writes this process's totals now (DoFns call it at the end of each bundle)."""
    if os.environ.get(ENV):
        with _lock:
            _write()


def _write() -> None:
    global _flushed_at
    directory = os.environ[ENV]
    if directory != _counting_into:  # nothing counted for this run in this process yet
        return
    for kind, total in _counts.items():
        path = os.path.join(directory, f"{kind}-{os.getpid()}")
        temporary = f"{path}.tmp"
        try:
            with open(temporary, "w") as handle:
                handle.write(str(total))
            os.replace(temporary, path)  # a reader sees the old total or the new one, never half
        except OSError:  # the display is gone (the run is ending): nothing to report to
            return
    _flushed_at = time.monotonic()


def totals(directory: str) -> dict[str, int]:
    """The run's totals so far: every process's file of each kind, summed."""
    out = {PLANNED: 0, DONE: 0, KEYS: 0}
    for path in glob.glob(os.path.join(directory, "*-*")):
        kind = os.path.basename(path).split("-", 1)[0]
        if kind in out and not path.endswith(".tmp"):
            try:
                with open(path) as handle:
                    out[kind] += int(handle.read() or 0)
            except (OSError, ValueError):
                continue
    return out


class Display:
    """Context manager around a local run: the progress bar on `stream` while the run goes on.

    `fits_per_window`: fits each key x window makes (one per model); `keys_expected`: the run's distinct
    keys when the launcher could count them (None: the total is the windows cut so far). Disabled (does
    nothing) when `enabled` is false."""

    def __init__(self, enabled: bool, fits_per_window: int = 1, stream=None, keys_expected: int | None = None):
        self.enabled, self._fits, self._keys_expected = enabled, fits_per_window, keys_expected
        self._stream = stream if stream is not None else sys.stderr
        self._directory = self._thread = self._bar = None
        self._stop = threading.Event()

    def __enter__(self) -> "Display":
        if self.enabled:
            from tqdm import tqdm  # only a terminal run draws a bar

            self._directory = tempfile.mkdtemp(prefix="many-models-progress-")
            os.environ[ENV] = self._directory
            self._bar = tqdm(total=None, unit="fit", desc=READING, file=self._stream,
                             dynamic_ncols=True, mininterval=POLL_SECONDS)
            self._thread = threading.Thread(target=self._poll, name="progress", daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self._update()

    def _update(self, final: bool = False) -> None:
        found = totals(self._directory)
        if not found[PLANNED] and not final:
            return  # still reading and grouping: the bar shows the time spent
        total, done = expected_fits(found, self._keys_expected, final) * self._fits, found[DONE]
        if self._bar.desc != FITTING:  # the fits begin: rate and time left count from here
            self._bar.set_description_str(FITTING, refresh=False)
            self._bar.reset(total=total)
        elif total != self._bar.total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def __exit__(self, *exc) -> None:
        if not self.enabled:
            return
        self._stop.set()
        self._thread.join()
        self._update(final=True)
        self._bar.close()
        os.environ.pop(ENV, None)
        shutil.rmtree(self._directory, ignore_errors=True)


def expected_fits(found: dict, keys_expected: int | None, final: bool = False) -> int:
    """Key x windows the run will fit: at the end the windows cut; before, the keys expected x the
    windows per key cut so far (never fewer than the windows cut)."""
    planned, keys = found[PLANNED], found[KEYS]
    if final or not keys_expected or not keys:
        return planned
    return max(planned, round(planned / keys * keys_expected))
