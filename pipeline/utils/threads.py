"""Every fit runs with --model_threads threads in each thread pool it uses (OpenMP, BLAS).

A limit set once per process (say in DoFn.setup) is not enough, for three reasons:
- threadpoolctl only reaches libraries already loaded, and scikit-learn, XGBoost and their
  OpenMP runtime are imported lazily, at the first fit, after setup;
- OpenMP's thread count belongs to the calling thread (omp_set_num_threads sets an ICV of that
  thread only), and Beam runs bundles on threads of its own, not on the one that ran setup;
- OpenMP and OpenBLAS size their pools from the environment when they are loaded.

So two measures, both needed:
- `set_environment(n)` before a process loads the libraries: the local runner's worker processes
  (they inherit the launcher's environment), the --group_timeout_s helper process, and any library
  loaded later in this one (including inside a user's fit function);
- `limit(n)` on the calling thread right before each fit, once the estimator's library is imported.
  It keeps one ThreadpoolController and scans the loaded libraries again only after new modules
  were imported: a scan (what `threadpool_limits` does on every call) costs about 3 ms in a Beam
  worker, as much as a whole ridge fit; a limit on the kept controller about 10 µs.

A library first loaded in the middle of a fit (a user's function importing it) gets its count
from the environment only; OpenBLAS caps that at the core count, so a --model_threads above the
core count reaches it from the next fit on.

The limits are not restored after the fit: every fit of a process uses the same count, and BLAS's
count is process-wide, so restoring it from one bundle thread would undo the limit of a fit still
running on another.

Imports nothing of this package: the helper process and every stage can use it.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import threading

# OpenMP (libgomp of scikit-learn and XGBoost), OpenBLAS (numpy, scipy), MKL, BLIS, Accelerate, numexpr.
ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

MALLOC_ARENA_ENV, M_ARENA_MAX = "MALLOC_ARENA_MAX", -8  # glibc's mallopt parameter number

_lock = threading.Lock()
_controller = None
_modules_seen = -1


def set_environment(threads: int, environ=None) -> None:
    """Thread counts for libraries loaded from now on, here and in processes started from here.
    --model_threads wins over values already set: it is the one setting for every fit."""
    environ = os.environ if environ is None else environ
    for name in ENV_VARS:
        environ[name] = str(int(threads))


def _current_controller():
    """One ThreadpoolController per process, rebuilt when modules (and so maybe libraries) were
    imported since it was built."""
    global _controller, _modules_seen
    count = len(sys.modules)
    if count != _modules_seen:
        with _lock:
            if count != _modules_seen:
                from threadpoolctl import ThreadpoolController

                _controller, _modules_seen = ThreadpoolController(), count
    return _controller


def limit(threads: int) -> None:
    """Every thread pool loaded in this process at `threads`: OpenMP for the calling thread (the one
    about to fit), BLAS for the process. Call it after the estimator's library is imported."""
    _current_controller().limit(limits=int(threads))


def harness_threads(machine_type: str | None, model_threads: int) -> int | None:
    """Bundles a Dataflow batch worker should run at once so that its fits fill its vCPUs exactly:
    vCPUs // model_threads (at least 1); None when the machine type does not say its vCPUs.

    Dataflow runs one bundle thread per vCPU of a batch worker unless told otherwise
    (WorkerPool.numThreadsPerWorker, set by --number_of_worker_harness_threads)."""
    match = re.fullmatch(r"(?:.*-)?custom-(\d+)-\d+(?:-ext)?|[a-z0-9]+-[a-z]+-(\d+)(?:-[a-z0-9-]+)?",
                         machine_type or "")
    if not match:
        return None
    vcpus = int(match.group(1) or match.group(2))
    return max(1, vcpus // max(1, int(model_threads)))


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Two glibc malloc arenas for this process and the local workers it starts (unless
    MALLOC_ARENA_MAX is already set). glibc gives each allocating thread an arena of its own
    and keeps freed memory in it; with gRPC's thread pools that held a fifth of a local run's peak
    memory, and fewer arenas also cost less CPU (bench/NOTE.md). The image sets the same."""
    arenas = int(os.environ.setdefault(MALLOC_ARENA_ENV, str(arenas)))  # inherited by the workers
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas)  # this process has already started
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass
