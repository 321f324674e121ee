"""The statsforecast side of `make bench-forecast`, run in its own venv (bench/.venv-forecast,
bench/forecast-requirements.txt), as the Spark peer runs in bench/.venv-spark.

    bench/.venv-forecast/bin/python -m bench.forecast_peer --wheel W --frequency MONTHLY --n_windows 2 --out F.json

Each model fitted on every series' training values and forecast over the competition's horizon, one
StatsForecast call per model (n_jobs = the cores) so that each model's wall time is its own. With
--n_windows N > 0 the same work as our pipeline is timed too: `cross_validation` over the N windows of one
horizon before each series' end (step = the horizon, expanding, refit), then the forecast; the backtest
windows' forecasts are kept (per series, per window, oldest first) so that the bench can choose from them.
A first call on a few series pays the imports (and any compilation; NUMBA_CACHE_DIR keeps it between runs)
and is timed apart. Writes {"warmup_seconds": s, "series": n, "n_jobs": j, "models": {model:
{"forecast_seconds": s, "backtest_seconds": s, "forecasts": {series: [values]}, "backtests": {series:
[[values of window 1], ...]}}}}.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from bench import forecast_data

MODELS = ("naive", "seasonal_naive", "theta", "dynamic_theta", "ets", "arima", "ces")


def make_model(name: str, season: int):
    from statsforecast import models

    return {"naive": lambda: models.Naive(), "seasonal_naive": lambda: models.SeasonalNaive(season_length=season),
            "theta": lambda: models.Theta(season_length=season),
            "dynamic_theta": lambda: models.DynamicOptimizedTheta(season_length=season),
            "ets": lambda: models.AutoETS(season_length=season),
            "arima": lambda: models.AutoARIMA(season_length=season),
            "ces": lambda: models.AutoCES(season_length=season)}[name]()


def stats_forecast(name: str, season: int, freq: str, n_jobs: int):
    """One model, with seasonal naive wherever it raises on a series (AutoETS on a backtest window of a few
    quarters: "tiny datasets"), as our runs take --fallback_model=seasonal_naive."""
    from statsforecast import StatsForecast

    return StatsForecast(models=[make_model(name, season)], freq=freq, n_jobs=n_jobs,
                         fallback_model=make_model("seasonal_naive", season))


def _column(out):
    out = out.reset_index() if "unique_id" not in out.columns else out
    return out, [c for c in out.columns if c not in ("unique_id", "ds", "cutoff", "y")][0]


def windows_that_fit(frame, horizon: int, n_windows: int) -> dict[int, list[str]]:
    """{windows: series} with n_windows backtest windows each, or as many as a shorter series holds with
    one period left to train on (statsforecast refuses a series too short for all of them; our pipeline
    gives such a key the windows it has): tourism's Q194 (22 quarters) has 2 of 3."""
    lengths = frame.groupby("unique_id").size()
    fits = {uid: min(n_windows, (int(n) - 1) // horizon) for uid, n in lengths.items()}
    out: dict[int, list[str]] = {}
    for uid, windows in fits.items():
        if windows > 0:
            out.setdefault(windows, []).append(uid)
    return out


def run_model(name: str, frame, season: int, freq: str, horizon: int, n_windows: int, n_jobs: int) -> dict:
    result = {"backtest_seconds": None, "backtests": {}}
    if n_windows:
        started = time.perf_counter()
        for windows, uids in windows_that_fit(frame, horizon, n_windows).items():
            backtests = stats_forecast(name, season, freq, n_jobs).cross_validation(
                df=frame[frame["unique_id"].isin(uids)], h=horizon, n_windows=windows, step_size=horizon)
            backtests, column = _column(backtests)
            result["backtests"].update({uid: [window.sort_values("ds")[column].tolist()
                                              for _, window in group.groupby("cutoff", sort=True)]
                                        for uid, group in backtests.groupby("unique_id")})
        result["backtest_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    out = stats_forecast(name, season, freq, n_jobs).forecast(df=frame, h=horizon)
    result["forecast_seconds"] = time.perf_counter() - started
    out, column = _column(out)
    result["forecasts"] = {uid: group.sort_values("ds")[column].tolist() for uid, group in out.groupby("unique_id")}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wheel", required=True)
    parser.add_argument("--frequency", default="MONTHLY")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--n_windows", type=int, default=0, help="backtest windows timed as well (0: none)")
    parser.add_argument("--n_jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    from statsforecast import StatsForecast

    series = forecast_data.read_tourism(args.wheel, args.frequency, args.replicas)
    horizon, season = series[0].horizon, series[0].season
    frame = forecast_data.long_table(series, with_holdout_rows=False)
    freq = forecast_data.FREQ[args.frequency]
    names = [m for m in args.models.split(",") if m]
    started = time.perf_counter()
    few = frame[frame["unique_id"].isin([s.name for s in series[:4]])]
    StatsForecast(models=[make_model(m, season) for m in names], freq=freq, n_jobs=1).forecast(df=few, h=horizon)
    result = {"warmup_seconds": time.perf_counter() - started, "series": len(series), "n_jobs": args.n_jobs,
              "models": {name: run_model(name, frame, season, freq, horizon, args.n_windows, args.n_jobs)
                         for name in names}}
    with open(args.out, "w") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
