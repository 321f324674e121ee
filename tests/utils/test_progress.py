"""A local run on a terminal shows key x window fits done of planned, rate and time left; nothing
without a terminal or with --quiet, and the counting reaches across the local runner's worker processes."""

from __future__ import annotations

import io
import os

from pipeline import run as pipeline_run
from pipeline.utils import progress
from tests.helpers.pipeline_runs import make_rows, run_pipeline


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def input_path(tmp_path) -> str:
    path = tmp_path / "input.parquet"  # 3 keys: 2 x 3 windows, one key too short for any (skipped)
    make_rows({"A": [2001, 2002, 2003, 2004, 2005], "B": [2001, 2002, 2003, 2004, 2005], "C": [2004, 2005]},
              days=5).to_parquet(path, index=False)
    return str(path)


def test_worker_processes_report_every_planned_and_finished_fit(tmp_path, monkeypatch):
    folder = tmp_path / "progress"
    folder.mkdir()
    monkeypatch.setenv(progress.ENV, str(folder))  # as the display sets it; the workers inherit it
    summary = run_pipeline(tmp_path / "out", f"--input={input_path(tmp_path)}", "--model=ridge", in_process=False)
    written = os.listdir(folder)
    assert any(name.startswith("done-") for name in written)
    assert {name.split("-")[1] for name in written} - {str(os.getpid())}  # counted in the worker processes
    assert progress.totals(str(folder)) == {progress.PLANNED: summary["groups_planned"],
                                            progress.DONE: summary["groups_planned"]}


def test_display_draws_fits_done_of_planned_and_cleans_up(tmp_path):
    terminal = Terminal()
    with progress.Display(True, fits_per_window=2, stream=terminal):
        folder = os.environ[progress.ENV]
        progress.count(progress.PLANNED, 3)
        progress.count(progress.DONE, 5)
        progress.flush()
    assert "5/6" in terminal.getvalue() and "fit" in terminal.getvalue()
    assert progress.ENV not in os.environ and not os.path.exists(folder)
    with progress.Display(False, stream=terminal):
        assert progress.ENV not in os.environ


def test_a_terminal_run_shows_progress_and_quiet_hides_it(tmp_path, monkeypatch):
    argv = [f"--input={input_path(tmp_path)}", "--model=ridge", "--direct_running_mode=in_memory",
            "--direct_num_workers=1"]
    shown = Terminal()
    monkeypatch.setattr("sys.stderr", shown)
    summary = pipeline_run.run([f"--output={tmp_path / 'shown'}", *argv])
    fits = summary["groups_planned"]
    assert f"{fits}/{fits}" in shown.getvalue()
    quiet = Terminal()
    monkeypatch.setattr("sys.stderr", quiet)
    pipeline_run.run([f"--output={tmp_path / 'quiet'}", "--quiet", *argv])
    assert "key x window fits" not in quiet.getvalue()
    piped = io.StringIO()  # not a terminal: no bar either
    monkeypatch.setattr("sys.stderr", piped)
    pipeline_run.run([f"--output={tmp_path / 'piped'}", *argv])
    assert "key x window fits" not in piped.getvalue()
