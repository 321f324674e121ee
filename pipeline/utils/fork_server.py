"""Local worker processes forked from one warm process, instead of each started from nothing (Linux).

Beam's local runner (multi_processing mode) starts every worker as `python -m
apache_beam.runners.worker.sdk_worker_main`, a fresh interpreter that imports Beam, pandas, pyarrow, this
package's stages and the models' libraries (statsforecast's: about a second) before its first bundle. A fork
server imports all that once, while the launcher imports, parses and builds the graph, then forks each worker
Beam asks for: copy-on-write, ready in milliseconds (bench/NOTE.md gives what it saves).

    start_early(argv, "pipeline.run")      # first thing in `python -m pipeline` (pipeline/__main__.py)
    server = claim(argv, "pipeline.run")   # the run's, once it knows its workers are local processes
    runner.local_runner(options, server)   # Beam's local runner, its worker command pointed at `server`

The server imports Beam's worker, then calls the entry module's `import_models_of(argv)` (the entry's own
imports: every stage; then what the models of `argv` need). Beam's worker command is `client` below, which
imports only the standard library: it hands the server its environment, folder and standard streams, waits
for the forked worker's exit code and exits with it. A killed client takes its worker with it (the server
kills it when the client's connection closes), a server that dies takes its workers (PR_SET_PDEATHSIG), a
server whose launcher is gone exits within a second, and a client that finds no server runs Beam's worker
itself. Forking is safe because the server never starts a Python thread or a gRPC channel (gRPC's threads,
which must not be forked, start in each worker after its fork); the native pools imports start (OpenBLAS,
jemalloc) handle fork, as under multiprocessing's fork. What libraries read from the environment when they
load (thread counts) is the server's; `pipeline.utils.threads.limit` sets the pools before every fit anyway.
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import importlib
import json
import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

from pipeline.utils import threads

MODULE = "pipeline.utils.fork_server"  # not __name__: that is "__main__" in the server and the client
BEAM_WORKER = "apache_beam.runners.worker.sdk_worker_main"
# Linux only: fork is unsafe in macOS's system libraries (Python's own multiprocessing spawns there), and
# PR_SET_PDEATHSIG is Linux's. Elsewhere Beam starts its workers itself.
SUPPORTED = sys.platform.startswith("linux")
_PR_SET_PDEATHSIG = 1
_PARENT_CHECK_SECONDS = 1.0


class ForkServer:
    """The launcher's handle on a running fork server (`serve`, in its own process)."""

    def __init__(self, process: subprocess.Popen, folder: str):
        self._process, self._folder = process, folder
        self.address = os.path.join(folder, "socket")

    @classmethod
    def start(cls, argv: list[str], entry: str) -> "ForkServer":
        """A server that imports Beam's worker, then calls `entry`'s import_models_of(argv): what the workers
        of the run `argv` will import (the entry module's own imports: every stage; the models' libraries)."""
        preload = [(BEAM_WORKER, None, []), (entry, "import_models_of", [list(argv)])]
        folder = tempfile.mkdtemp(prefix="pipeline-forks-")  # a short path: a socket's is limited to 107 bytes
        command = [sys.executable, "-m", MODULE, "serve", os.path.join(folder, "socket"), str(os.getpid()),
                   json.dumps(preload)]
        return cls(subprocess.Popen(command, stdin=subprocess.DEVNULL), folder)

    @property
    def worker_command(self) -> str:
        """The shell command that gives Beam a forked worker (what Beam runs with shell=True)."""
        return f"{shlex.quote(sys.executable)} -m {MODULE} client {shlex.quote(self.address)}"

    def alive(self) -> bool:
        return self._process.poll() is None

    def __enter__(self) -> "ForkServer":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._folder, ignore_errors=True)


_early: ForkServer | None = None


def start_early(argv: list[str], entry: str) -> None:
    """Starts a server before the launcher has even imported its pipeline, when its command line asks for
    the plain local default (no --runner, no --direct_running_mode: Beam's local runner with worker
    processes); `claim` takes it, or it is stopped at exit. Any other run decides later (`claim`)."""
    global _early
    if _early is None and SUPPORTED and not any(
            arg.split("=")[0] in ("--runner", "--direct_running_mode", "--help", "-h") for arg in argv):
        threads.limit_malloc_arenas()  # before the server starts: glibc reads it once, and forks inherit it
        try:
            _early = ForkServer.start(argv, entry)
        except OSError:  # no temporary folder, no process to spare: the run goes on with Beam's own workers
            return
        atexit.register(_early.close)


def claim(argv: list[str], entry: str) -> ForkServer | None:
    """The server started early, if it is still running, else a new one (`ForkServer.start`), which the
    caller closes; None where there can be none (not Linux, or it could not start)."""
    global _early
    server, _early = _early, None
    if server is not None and server.alive():
        return server
    if not SUPPORTED:
        return None
    try:
        return ForkServer.start(argv, entry)
    except OSError:
        return None


def stop_early() -> None:
    """Stops a server started early that this run does not use (Dataflow, in-process workers)."""
    global _early
    if _early is not None:
        _early.close()
        _early = None


def _send(address: str, message: dict, fds=(), wait_seconds: float = 30.0) -> socket.socket:
    """Connects (waiting up to `wait_seconds` for a server that is starting: its folder exists, its socket
    not yet) and sends `message` with `fds`."""
    deadline = time.monotonic() + wait_seconds
    while True:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(address)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            connection.close()
            if time.monotonic() > deadline or not os.path.isdir(os.path.dirname(address)):
                raise
            time.sleep(0.01)
    socket.send_fds(connection, [json.dumps(message).encode() + b"\n"], list(fds))
    return connection


def _receive(connection: socket.socket) -> tuple[dict | None, list[int]]:
    """One message (a JSON line) and the descriptors sent with it; (None, []) when the peer closed."""
    data, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
    while data and not data.endswith(b"\n"):
        more = connection.recv(1 << 20)
        if not more:
            break
        data += more
    return (json.loads(data) if data.strip() else None), fds


# The server's side.

def _preload(items) -> None:
    for module, function, args in items:
        try:
            loaded = importlib.import_module(module)
            if function:
                getattr(loaded, function)(*args)
        except Exception:  # noqa: BLE001 - the worker imports the same and reports what is wrong itself
            pass
    gc.freeze()  # what was imported lives as long as the workers: out of their collections, and their pages shared


def serve(address: str, launcher_pid: int, preload) -> None:
    """Listens on `address` (before importing anything, so that a client never finds it missing while
    the imports run), imports `preload`, then forks a worker per client until terminated."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)
    wakeup_read, wakeup_write = os.pipe()
    os.set_blocking(wakeup_write, False)
    signal.set_wakeup_fd(wakeup_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that SIGCHLD writes to the wakeup pipe
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    workers: dict[int, socket.socket] = {}  # worker pid -> its client's connection
    try:
        _preload(preload)
        while os.getppid() == launcher_pid:
            readable, _, _ = select.select([listener, wakeup_read, *workers.values()], [], [],
                                           _PARENT_CHECK_SECONDS)
            if wakeup_read in readable:
                os.read(wakeup_read, 512)
            _reap(workers)
            for connection in [c for c in readable if c not in (listener, wakeup_read)]:
                pid = next((p for p, c in workers.items() if c is connection), None)
                if pid is not None and not connection.recv(1):  # the client is gone: so is its worker
                    _kill(pid)
            if listener in readable:
                _accept(listener, workers, (listener, wakeup_read, wakeup_write))
    finally:
        for pid in workers:
            _kill(pid)


def _accept(listener: socket.socket, workers: dict, server_fds) -> None:
    connection, _ = listener.accept()
    message, fds = _receive(connection)
    if message is None:
        connection.close()
        return
    pid = os.fork()
    if pid == 0:  # the worker
        for held in (*server_fds, *workers.values()):
            held.close() if isinstance(held, socket.socket) else os.close(held)
        connection.close()
        _become_worker(message, fds)
    for fd in fds:
        os.close(fd)
    workers[pid] = connection
    connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def _become_worker(message: dict, fds: list[int]) -> None:
    """In the forked child: the client's streams, folder and environment, then Beam's worker; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with the server
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(message["cwd"])
        os.environ.clear()
        os.environ.update(message["env"])
        threads.limit_malloc_arenas()  # glibc read the server's environment; the worker's may say otherwise
        sys.argv = message["argv"]
        importlib.import_module(BEAM_WORKER).main(sys.argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported as the worker's exit code, as an interpreter would
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)  # no interpreter teardown: the frozen heap's final sweep is the server's business


def _reap(workers: dict) -> None:
    while workers:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        connection = workers.pop(pid, None)
        if connection is not None:
            try:
                connection.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
            except OSError:  # the client is gone already
                pass
            connection.close()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# The client's side: Beam's worker command.

def client(address: str, argv: list[str]) -> int:
    """Asks the server at `address` for a worker with this process's environment and streams; its exit code."""
    worker_argv = [BEAM_WORKER, *argv]
    try:
        connection = _send(address, {"env": dict(os.environ), "cwd": os.getcwd(), "argv": worker_argv},
                           fds=(0, 1, 2))
    except OSError:  # no server (it was stopped, or never started): the worker Beam would have started
        os.execv(sys.executable, [sys.executable, "-m", *worker_argv])
    reader = connection.makefile("rb")
    for line in reader:
        reply = json.loads(line)
        if "exit" in reply:
            return int(reply["exit"])
    print(f"{MODULE}: the fork server closed before its worker exited", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        serve(argv[1], int(argv[2]), json.loads(argv[3]))
        return 0
    if argv[:1] == ["client"]:
        return client(argv[1], argv[2:])
    print(f"usage: python -m {MODULE} serve ADDRESS LAUNCHER_PID PRELOAD_JSON | client ADDRESS", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
