"""Calls with a hard time limit: the function runs in a helper process that is killed at the deadline.

A thread cannot stop a fit that hangs inside a C extension (it keeps the core
and the GIL-free loop running forever), so `--group_timeout_s` runs each fit in
one long-lived helper process per DoFn instance. The helper is started with
`spawn` (never `fork`: the Beam worker holds gRPC threads that must not be
forked), imports only what the called function needs, and is reused for every
call; a call that overruns kills it and the next call starts a fresh one.
Only functions and arguments that pickle can be sent (module-level functions,
numpy arrays, dataclasses).
"""

from __future__ import annotations

import multiprocessing
import time

from pipeline.utils import threads as thread_pools
from pipeline.utils.tagged import INFRASTRUCTURE_ERRORS

STARTUP_SECONDS = 300.0  # generous: a cold worker imports numpy/scikit-learn once


class CallTimeout(TimeoutError):
    """The call did not finish within its deadline; the helper process was killed."""

    ledger_reason = "timeout"  # the group's own failure, though a TimeoutError is an OSError (utils.tagged)


class HelperCrashed(RuntimeError):
    """The helper process died during the call (e.g. a segfault in a C extension)."""


class RemoteError(RuntimeError):
    """The called function raised in the helper; `class_name` is the original exception's class."""

    def __init__(self, class_name: str, message: str):
        super().__init__(message)
        self.class_name = class_name


def _serve(connection, threads: int, warmup) -> None:
    """The helper's loop: receive (function, args), reply ("ok", result) or ("error", class, message,
    whether it is an infrastructure error: OSError, MemoryError).

    `warmup`, (function, args) or None, runs before the helper says it is ready: imports that would
    otherwise count against the first call's time limit (scikit-learn takes seconds to import)."""
    thread_pools.limit(threads)  # what is loaded already; each fit sets its pools again (registry.fit_estimator)
    if warmup is not None:
        try:
            warmup[0](*warmup[1])
        except Exception:  # the call that needs it reports what is wrong, with its own message
            pass
    connection.send(("ready",))
    while True:
        try:
            function, args = connection.recv()
        except EOFError:  # the parent went away
            return
        try:
            reply = ("ok", function(*args))
        except Exception as exc:
            reply = ("error", type(exc).__name__, str(exc)[:1000], isinstance(exc, INFRASTRUCTURE_ERRORS))
        connection.send(reply)


class DeadlineCaller:
    """Runs `function(*args)` in a helper process and gives up after `seconds`."""

    def __init__(self, seconds: float, threads: int = 1, warmup=None):
        self.seconds, self._threads, self._warmup = seconds, threads, warmup
        self._process = self._connection = None

    def start(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        # The helper inherits this environment and imports numpy/scikit-learn with --model_threads.
        thread_pools.set_environment(self._threads)
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, self._threads, self._warmup), daemon=True,
                                        name="deadline-helper")
        self._process.start()
        child.close()
        self._connection = parent
        if not parent.poll(STARTUP_SECONDS):
            self.stop()
            raise HelperCrashed(f"the helper process did not start within {STARTUP_SECONDS:.0f} s")
        parent.recv()

    def call(self, function, *args):
        self.start()
        started = time.monotonic()
        self._connection.send((function, args))
        if not self._connection.poll(self.seconds):
            self.stop()
            raise CallTimeout(f"did not finish within {self.seconds:g} s (stopped after "
                              f"{time.monotonic() - started:.1f} s)")
        try:
            reply = self._connection.recv()
        except EOFError:
            code = self._process.exitcode
            self.stop()
            raise HelperCrashed(f"the helper process died (exit code {code})") from None
        if reply[0] == "error":
            _, class_name, message, infrastructure = reply
            if infrastructure:  # a full disk or exhausted memory in the helper is the run's, not the group's
                raise (MemoryError if class_name == "MemoryError" else OSError)(
                    f"{class_name} in the deadline helper process: {message}")
            raise RemoteError(class_name, message)
        return reply[1]

    def stop(self) -> None:
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(timeout=10)
            self._connection.close()
        self._process = self._connection = None
