"""A local run on a terminal shows key x window fits done of planned, rate and time left; nothing
without a terminal or with --quiet, and the counting reaches across the local runner's worker processes."""

from __future__ import annotations

import io
import os
import re

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
                                            progress.DONE: summary["groups_planned"], progress.KEYS: 3}


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


def test_the_total_is_known_before_the_fits_end(tmp_path, monkeypatch):
    """1,000 key x window fits (100 keys x 10 windows): while they run, the bar already shows the whole
    total (the launcher counted the keys; the cut, each key's windows) and fewer done."""
    path = tmp_path / "many.parquet"
    make_rows({f"K{k:03d}": list(range(2001, 2013)) for k in range(100)}, days=3).to_parquet(path, index=False)
    shown = Terminal()
    monkeypatch.setattr("sys.stderr", shown)
    monkeypatch.setattr(progress, "POLL_SECONDS", 0.05)  # a frame every poll: the test reads them all
    monkeypatch.setattr(progress, "FLUSH_SECONDS", 0.0)
    summary = pipeline_run.run([f"--output={tmp_path / 'out'}", f"--input={path}", "--model=ridge",
                                "--direct_running_mode=in_memory",
                                "--direct_num_workers=1"])
    total = summary["groups_planned"]
    assert total == 1000
    frames = [(int(done), int(of)) for done, of in re.findall(r"(\d+)/(\d+)", shown.getvalue())]
    assert any(of == total and done < total for done, of in frames), frames[:20]
    assert frames[-1] == (total, total)
    assert progress.READING in shown.getvalue()  # the reading and grouping phase, before the first cut


def test_the_expected_total_scales_the_windows_per_key_cut_so_far():
    found = {progress.PLANNED: 20, progress.DONE: 3, progress.KEYS: 2}
    assert progress.expected_fits(found, keys_expected=50) == 500
    assert progress.expected_fits(found, keys_expected=None) == 20  # keys not counted: the windows cut
    assert progress.expected_fits(found, keys_expected=50, final=True) == 20  # at the end: what was cut
    assert progress.expected_fits({**found, progress.KEYS: 0}, keys_expected=50) == 20
