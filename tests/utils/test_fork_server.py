"""Local workers forked from a warm process (pipeline.utils.fork_server): Beam's real local runner runs real
pipelines on them, and no worker outlives what it belongs to (its client, its server, the launcher)."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import textwrap
import time

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from pipeline import runner
from pipeline.utils import fork_server
from tests.helpers import ROOT

TWO_WORKERS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


@pytest.fixture
def server():
    started = fork_server.ForkServer.start(["--model=ridge"], "pipeline.run")
    yield started
    started.close()


class _Out(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--out")


def _run_and_read_parents(options: PipelineOptions, runner_to_use) -> set[int]:
    """Runs a small pipeline whose elements each report the parent of the worker process that ran them."""
    with beam.Pipeline(runner=runner_to_use, options=options) as pipeline:
        squares = pipeline | beam.Create(range(20)) | beam.Reshuffle() | beam.Map(lambda n: (n * n, os.getppid()))
        assert_that(squares | beam.Map(lambda pair: pair[0]), equal_to([n * n for n in range(20)]))
        _ = (squares | beam.Map(lambda pair: pair[1]) | beam.Distinct()
             | beam.io.WriteToText(options.view_as(_Out).out))
    prefix = options.view_as(_Out).out
    return {int(line) for path in glob.glob(prefix + "*") for line in open(path) if line.strip()}


def test_the_local_runner_runs_its_workers_as_forks_of_the_server(server, tmp_path):
    options = runner.pipeline_options([*TWO_WORKERS, f"--out={tmp_path}/parents"])
    local = runner.local_runner(options, server)
    assert isinstance(local, runner.ForkedWorkersRunner)
    assert _run_and_read_parents(options, local) == {server._process.pid}  # every element ran in a fork of it


def test_without_worker_processes_the_runner_is_beams_own(server):
    assert runner.local_runner(runner.pipeline_options(["--direct_running_mode=in_memory"]), server) is None
    assert runner.local_runner(runner.pipeline_options(TWO_WORKERS), None) is None


def test_a_client_that_finds_no_server_runs_the_worker_itself(tmp_path):
    stopped = fork_server.ForkServer.start([], "pipeline.run")
    stopped.close()  # its folder is gone: the clients start Beam's own worker at once
    options = runner.pipeline_options([*TWO_WORKERS, f"--out={tmp_path}/parents"])
    parents = _run_and_read_parents(options, runner.ForkedWorkersRunner(stopped.worker_command))
    assert parents and stopped._process.pid not in parents  # the pipeline ran, on workers of their own


def _client(server: fork_server.ForkServer, **environment) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": ROOT, **environment}
    return subprocess.Popen(server.worker_command, shell=True, env=env,
                            stderr=subprocess.PIPE, start_new_session=True)


def _children(pid: int) -> set[int]:
    try:
        return {int(child) for task in os.listdir(f"/proc/{pid}/task")
                for child in open(f"/proc/{pid}/task/{task}/children").read().split()}
    except FileNotFoundError:
        return set()


def _wait_until(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# A control address where nothing listens: Beam's worker waits for it (up to a minute), so it stays alive.
WAITING = {"CONTROL_API_SERVICE_DESCRIPTOR": 'url: "localhost:9"', "PIPELINE_OPTIONS": "{}"}


def test_a_worker_that_fails_gives_its_exit_code_and_its_error_to_the_client(server):
    client = _client(server, CONTROL_API_SERVICE_DESCRIPTOR='url: "localhost:9"', PIPELINE_OPTIONS="not json")
    _, stderr = client.communicate(timeout=120)
    assert client.returncode == 1
    assert b"JSONDecodeError" in stderr  # the worker's traceback, on the client's own stderr


def test_a_killed_client_takes_its_worker_with_it(server):
    client = _client(server, **WAITING)
    assert _wait_until(lambda: _children(server._process.pid))
    (worker,) = _children(server._process.pid)
    os.killpg(client.pid, signal.SIGKILL)
    client.wait()
    assert _wait_until(lambda: not _alive(worker))
    assert server.alive()


def test_a_killed_server_takes_its_workers_with_it(server):
    client = _client(server, **WAITING)
    assert _wait_until(lambda: _children(server._process.pid))
    (worker,) = _children(server._process.pid)
    server._process.kill()
    assert _wait_until(lambda: not _alive(worker))
    assert client.wait(timeout=30) != 0  # and the client says its worker did not finish


def test_a_server_whose_launcher_is_gone_exits():
    launcher = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import os
        from pipeline.utils import fork_server
        server = fork_server.ForkServer.start([], "pipeline.run")
        print(server._process.pid, flush=True)
        os._exit(0)  # no close: the launcher died
    """)], capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, check=True)
    pid = int(launcher.stdout.split()[0])
    assert _wait_until(lambda: not _alive(pid))


def test_an_early_server_starts_only_for_the_plain_local_default(monkeypatch):
    started = []

    class Recorded:
        def __init__(self, argv):
            started.append(argv)

        def close(self):
            pass

    monkeypatch.setattr(fork_server.ForkServer, "start", classmethod(lambda cls, argv, entry: Recorded(argv)))
    monkeypatch.setattr(fork_server.threads, "limit_malloc_arenas", lambda: None)
    monkeypatch.setattr(fork_server.atexit, "register", lambda function: None)
    monkeypatch.setattr(fork_server, "_early", None)
    for argv in (["--runner=DataflowRunner"], ["--runner", "DirectRunner"], ["--direct_running_mode=in_memory"],
                 ["--help"]):
        fork_server.start_early(argv, "pipeline.run")
    assert started == []
    fork_server.start_early(["--model=theta"], "pipeline.run")
    assert started == [["--model=theta"]]
