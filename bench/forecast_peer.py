"""The statsforecast side of `make bench-forecast`, run in its own venv (bench/.venv-forecast,
bench/forecast-requirements.txt), as the Spark peer runs in bench/.venv-spark.

    bench/.venv-forecast/bin/python -m bench.forecast_peer --wheel W --frequency MONTHLY --out F.json

Each model fitted on every series' training values and forecast over the competition's horizon, one
StatsForecast call per model (n_jobs = the cores) so that each model's wall time is its own; a first call
on a few series compiles numba's code (NUMBA_CACHE_DIR keeps it between runs) and is timed apart.
Writes {"wall_seconds": {model: s}, "warmup_seconds": s, "forecasts": {model: {series: [values]}}}.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from bench import forecast_data

MODELS = ("naive", "seasonal_naive", "theta", "ets", "arima")


def make_model(name: str, season: int):
    from statsforecast import models

    return {"naive": lambda: models.Naive(), "seasonal_naive": lambda: models.SeasonalNaive(season_length=season),
            "theta": lambda: models.Theta(season_length=season),
            "ets": lambda: models.AutoETS(season_length=season),
            "arima": lambda: models.AutoARIMA(season_length=season)}[name]()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wheel", required=True)
    parser.add_argument("--frequency", default="MONTHLY")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS))
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
    result = {"warmup_seconds": time.perf_counter() - started, "wall_seconds": {}, "forecasts": {},
              "series": len(series), "n_jobs": args.n_jobs}
    for name in names:
        started = time.perf_counter()
        out = StatsForecast(models=[make_model(name, season)], freq=freq, n_jobs=args.n_jobs).forecast(
            df=frame, h=horizon)
        result["wall_seconds"][name] = time.perf_counter() - started
        out = out.reset_index() if "unique_id" not in out.columns else out
        column = [c for c in out.columns if c not in ("unique_id", "ds")][0]
        result["forecasts"][name] = {uid: group.sort_values("ds")[column].tolist()
                                     for uid, group in out.groupby("unique_id")}
    with open(args.out, "w") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
