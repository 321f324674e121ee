"""gc.freeze() once per process: the modules imported by then outlive every run and DoFn of the process,
so they are kept out of the collector's sweeps; freezing again later would also keep whatever a run or
a DoFn had live then (its cyclic garbage never collected again, in a process that runs many pipelines
or a worker that sets its DoFns up again and again)."""

from __future__ import annotations

import atexit
import gc

_frozen = False


def freeze_once() -> None:
    """Collects the garbage, then freezes what is left: the first call in a process only."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()
        # At exit, once more: the interpreter's final sweep over every object of Beam, pandas and
        # scikit-learn takes about a second per process, and the local runner stops its workers in turn.
        atexit.register(gc.freeze)
