"""What the search's fan-out costs per configuration, against fitting the same configurations in a loop.

    python -m bench.search_overhead [--shops 20] [--configs 16] [--repeat 1]

Four timings on the same data (the embedded sample's generator, clean):
- loop_search: a bare Python loop over key x window x configuration doing the validation fits and the
  refit of the winner (pandas + scikit-learn, no Beam);
- loop_single: the same loop with one fit per key x window (no search);
- pipeline_search (for each --search_batch_size): the pipeline with --param_grid;
- pipeline_single: the pipeline without search.
Overhead per configuration = ((pipeline_search - pipeline_single) - (loop_search - loop_single))
/ (key x windows x configurations): what the pipeline adds to each extra fit beyond the fit itself.
The pipeline runs on Beam's in-memory runner with one worker, the loop in one process: same core count.
Timings are wall-clock and only indicative on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from pipeline import run as pipeline_run
from pipeline.io.publishing.results import read_summary
from pipeline.io.sources import sample_data

FEATURES = ["attr1", "attr2", "attr3"]


def prepared(data: pd.DataFrame) -> pd.DataFrame:
    out = data.copy()
    out[FEATURES] = out[FEATURES].apply(pd.to_numeric, errors="coerce").fillna(0.0)
    return out.assign(date=pd.to_datetime(out["date"]))


def bare_loop(data: pd.DataFrame, alphas: list[float], size=3) -> int:
    """Validation fits for every configuration, then the winner refitted; returns the number of fits."""
    fits = 0
    first, last = data["year"].min(), data["year"].max()
    for _, rows in data.groupby("shop_id"):
        rows = rows.sort_values("date")
        for start in range(first, last - size + 2):
            window = rows[rows["year"].between(start, start + size - 1)]
            if window["year"].nunique() < size:
                continue
            test_start = start + size - 1
            fit, val = window[window["year"] < test_start - 1], window[window["year"] == test_start - 1]
            x_fit, y_fit = fit[FEATURES].to_numpy(dtype=float), fit["sales"].to_numpy(dtype=float)
            x_val, y_val = val[FEATURES].to_numpy(dtype=float), val["sales"].to_numpy(dtype=float)
            scores = []
            for alpha in alphas:  # arrays converted once per window: the fastest honest loop
                predicted = Ridge(alpha=alpha).fit(x_fit, y_fit).predict(x_val)
                scores.append(np.sqrt(np.mean((predicted - y_val) ** 2)))
                fits += 1
            train, test = window[window["year"] < test_start], window[window["year"] == test_start]
            Ridge(alpha=alphas[int(np.argmin(scores))]).fit(
                train[FEATURES].to_numpy(dtype=float), train["sales"].to_numpy(dtype=float)).predict(
                test[FEATURES].to_numpy(dtype=float))
    return fits


REPEAT = 1


def timed(function, *args) -> float:
    best = float("inf")
    for _ in range(REPEAT):
        started = time.perf_counter()
        function(*args)
        best = min(best, time.perf_counter() - started)
    return best


def pipeline_seconds(path: str, output: str, *args: str) -> tuple[float, dict]:
    argv = [f"--input={path}", f"--output={output}", "--model=ridge", "--direct_running_mode=in_memory",
            "--direct_num_workers=1", *args]
    seconds = timed(pipeline_run.run, argv)
    return seconds, read_summary(pipeline_run.parse_args(argv)[0].output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shops", type=int, default=20)
    parser.add_argument("--configs", type=int, default=16)
    parser.add_argument("--batch_sizes", default="1,16")
    parser.add_argument("--repeat", type=int, default=1, help="each timing is the fastest of N runs")
    args = parser.parse_args()
    global REPEAT
    REPEAT = args.repeat
    alphas = [float(a) for a in np.logspace(-3, 3, args.configs)]
    raw = sample_data.generate(args.shops, messy=False)
    data = prepared(raw)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "input.parquet")
        raw.to_parquet(path, index=False)
        loop_search = timed(bare_loop, data, alphas)
        loop_single = timed(bare_loop, data, alphas[:1])
        single, summary = pipeline_seconds(path, os.path.join(tmp, "single"))
        groups = summary["groups_trained"]
        results = {"shops": args.shops, "configs": args.configs, "key_windows": groups,
                   "config_fits": groups * args.configs, "loop_search_s": loop_search,
                   "loop_single_s": loop_single, "pipeline_single_s": single}
        extra_fit = (loop_search - loop_single) / (groups * args.configs)
        results["bare_seconds_per_config"] = extra_fit
        for batch in map(int, args.batch_sizes.split(",")):
            seconds, _ = pipeline_seconds(path, os.path.join(tmp, f"search{batch}"),
                                          f"--param_grid={json.dumps({'alpha': alphas})}",
                                          f"--search_batch_size={batch}")
            added = (seconds - single) / (groups * args.configs)
            results[f"pipeline_search_batch{batch}_s"] = seconds
            results[f"pipeline_seconds_per_config_batch{batch}"] = added
            results[f"overhead_seconds_per_config_batch{batch}"] = added - extra_fit
    print("RESULT " + json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
