"""Benchmark (not a test): what generated lag features cost (issue 21).

    python -m bench.lag_features [--series 1400] [--repeats 3] [--model ridge]

About 1,400 generated monthly series of 30 to 150 months ending at different dates (AR(1) around a
level per series). Two ratios, medians of `--repeats`, in one session:

- run: whole-process wall time of the pipeline with `--lags=1,2,3,12 --rolling_means=12` over the same
  run without them (runs interleaved, 2 worker processes);
- features: building the target-history features of every key (pipeline.stages.prepare.features, in this
  process) over a bare pandas loop computing the same shifts and rolling mean per key.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

LAGS, SPAN = (1, 2, 3, 12), 12
FEATURE_ARGS = ("--lags=" + ",".join(map(str, LAGS)), f"--rolling_means={SPAN}")


def monthly_series(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        months = int(rng.integers(30, 151))
        end = pd.Timestamp("2024-12-01") - pd.DateOffset(months=int(rng.integers(0, 24)))
        dates = pd.date_range(end=end, periods=months, freq="MS")
        noise, values = rng.normal(size=months), np.empty(months)
        values[0] = noise[0]
        for t in range(1, months):
            values[t] = 0.8 * values[t - 1] + noise[t]
        frames.append(pd.DataFrame({"series": f"s{i:05d}", "month_index": dates.year * 12 + dates.month - 1,
                                    "date": dates.date, "sales": 100.0 + 10 * values,
                                    "attr1": rng.normal(size=months)}))
    return pd.concat(frames, ignore_index=True)


def run_once(path: str, out: str, model: str, features: bool) -> float:
    argv = [sys.executable, "-m", "pipeline", f"--input={path}", f"--output={out}", "--if_output_exists=replace",
            "--key_column=series", "--time_column=month_index", "--features=attr1", f"--model={model}",
            "--window_size=36", "--test_periods=12", "--window_period=12", "--quiet=true",
            "--direct_num_workers=2", "--direct_running_mode=multi_processing", *(FEATURE_ARGS if features else ())]
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def bare_loop(keys: list[pd.DataFrame]) -> None:
    """The same features with plain pandas per key: shifts on a monthly-complete index."""
    for frame in keys:
        series = frame.set_index(pd.to_datetime(frame["date"]))["sales"].asfreq("MS")
        out = {f"lag_{k}": series.shift(k) for k in LAGS}
        out[f"rolling_mean_{SPAN}"] = series.shift(1).rolling(SPAN, min_periods=1).mean()
        pd.DataFrame(out).reindex(pd.to_datetime(frame["date"]))


def ours(keys: list[pd.DataFrame], params, spec) -> None:
    from pipeline.stages.prepare import features
    for frame in keys:
        features.add_target_features(frame, spec, params)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="ridge")
    parser.add_argument("--skip-runs", action="store_true", help="only the per-key feature ratio")
    args = parser.parse_args(argv)
    data = monthly_series(args.series)
    print(f"{args.series} series, {len(data)} rows; load average {os.getloadavg()[0]:.1f}")

    from pipeline.run import parse_args
    from pipeline.stages.prepare import features
    params = parse_args(["--key_column=series", "--time_column=month_index", "--features=attr1", *FEATURE_ARGS])[0]
    spec = features.FeatureSpec.from_params(params)
    keys = [frame.drop(columns="series").reset_index(drop=True) for _, frame in data.groupby("series")]
    timings = {"bare": [], "ours": []}
    for _ in range(args.repeats):
        for name, call in (("bare", lambda: bare_loop(keys)), ("ours", lambda: ours(keys, params, spec))):
            started = time.perf_counter()
            call()
            timings[name].append(time.perf_counter() - started)
    bare, mine = statistics.median(timings["bare"]), statistics.median(timings["ours"])
    print(f"features of every key: ours {mine:.2f} s, bare pandas loop {bare:.2f} s, ratio {mine / bare:.2f}")

    if not args.skip_runs:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "monthly.parquet")
            data.to_parquet(path, index=False)
            runs = {False: [], True: []}
            for repeat in range(args.repeats):
                for with_features in (False, True):
                    seconds = run_once(path, os.path.join(tmp, f"out_{with_features}"), args.model, with_features)
                    runs[with_features].append(seconds)
                    print(f"  run {repeat + 1} {'with' if with_features else 'without'} lags: {seconds:.1f} s "
                          f"(load {os.getloadavg()[0]:.1f})")
        plain, lagged = statistics.median(runs[False]), statistics.median(runs[True])
        print(f"run ({args.model}): with lags {lagged:.1f} s, without {plain:.1f} s, ratio {lagged / plain:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
