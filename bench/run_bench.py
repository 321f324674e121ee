"""Runs the benchmark matrix and prints one markdown table (also written to bench/results/).

Each variant runs as its own process, several times, interleaved (bare, article,
ours, bare, article, ours, ...), on the same generated data and the same cores:

- bare:    bench/bare.py, a pandas + scikit-learn loop parallelised with joblib (the floor);
- article: bench/article.py, the article's pipeline on the current Beam API (the reference);
- ours:    `python -m pipeline`, default settings;
- ours_1proc: the same with --direct_num_workers=1 (for the 2-vs-1 process speed-up; gbr only).

`--models` (issue 17): every registry model, bare and ours only, on one dataset of 20 shops x 16
years daily (20 x 14 = 280 key x windows, 102,280 predictions): one table of ours / bare per model.

Measured per run: wall time; CPU time (user + sys of the process and every descendant
it reaped, from os.wait4; Beam's and joblib's worker processes are reaped by their parents);
peak memory as the highest sum of the RSS of the whole process tree, sampled with psutil
every 50 ms (shared pages count once per process, the same way for every variant).
Reported: medians. After the first repetition the three variants' predictions are checked
to agree (same rows, same values within 1e-6).

    python -m bench.run_bench             # full matrix (long)
    python -m bench.run_bench --quick     # 50 shops only
    python -m bench.run_bench --models    # every registry model, 280 key x windows
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import glob
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA_DIR = os.path.join(HERE, "data")
RESULTS_DIR = os.path.join(HERE, "results")

FULL_MATRIX = ((50, "gbr"), (50, "ridge"), (400, "gbr"), (400, "ridge"), (2000, "ridge"))
QUICK_MATRIX = ((50, "gbr"), (50, "ridge"))
VARIANTS = ("bare", "article", "ours")
SAMPLE_EVERY = 0.05
MODELS_SHOPS, MODELS_YEARS = 20, 16  # --models: 20 shops x (16 - 3 + 1) window starts = 280 fits per model
MODELS_TARGET = 1.3  # issue 17: ours / bare wall per model
TARGETS = {  # from the issue: on 2 cores, medians of several runs
    "ours/bare wall, gbr, 400 shops": 1.10,
    "ours/bare wall, ridge, 400 shops": 1.30,
    "ours/bare peak RSS": 1.5,
    "2 processes vs 1 speed-up, gbr (at least)": 1.7,
    "2,000-shop / 400-shop wall, ridge": 5.5,
}


@dataclasses.dataclass
class Measurement:
    wall: float
    cpu: float
    peak_rss: int
    returncode: int


def data_path(shops: int, years: int = 6) -> str:
    """The article's schema, `shops` shops x `years` years daily, generated once per size."""
    path = os.path.join(DATA_DIR, f"shops_{shops}.parquet" if years == 6 else f"shops_{shops}_y{years}.parquet")
    if not os.path.exists(path):
        from pipeline.io import sample_data

        os.makedirs(DATA_DIR, exist_ok=True)
        sample_data.write(sample_data.generate(shops, years=years, seed=7, messy=False), path + ".tmp.parquet")
        os.replace(path + ".tmp.parquet", path)
    return path


def output_dir(variant: str, shops: int, model: str, years: int = 6) -> str:
    return os.path.join(DATA_DIR, "out", f"{variant}_{shops}_{model}" + ("" if years == 6 else f"_y{years}"))


def command(variant: str, shops: int, model: str, workers: int, years: int = 6) -> list[str]:
    data, out = data_path(shops, years), output_dir(variant, shops, model, years)
    python = sys.executable
    if variant == "bare":
        return [python, "-m", "bench.bare", f"--input={data}", f"--output={out}/predictions.parquet",
                f"--model={model}", f"--workers={workers}"]
    if variant == "article":
        return [python, "-m", "bench.article", f"--input={data}", f"--output={out}/predictions",
                f"--model={model}", f"--direct_num_workers={workers}"]
    ours = [python, "-m", "pipeline", f"--input={data}", f"--output={out}", f"--model={model}",
            "--run_id=bench", "--seed=0"]
    if variant == "ours":
        return ours + [f"--direct_num_workers={workers}"]
    if variant == "ours_1proc":
        return ours + ["--direct_num_workers=1"]
    raise ValueError(variant)


def measure(argv: list[str], log_path: str, timeout: float) -> Measurement:
    """Runs argv; wall, CPU of the reaped process tree, peak RSS of the live process tree."""
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    peak, done = [0], threading.Event()

    def sample():
        try:
            root = psutil.Process(process.pid)
        except psutil.Error:  # already gone
            return
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            total = 0
            for member in tree:
                try:
                    total += member.memory_info().rss
                except psutil.Error:
                    pass
            peak[0] = max(peak[0], total)
            done.wait(SAMPLE_EVERY)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    timer.cancel()
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    return Measurement(wall, usage.ru_utime + usage.ru_stime, peak[0], process.returncode)


def read_predictions(variant: str, out: str) -> pd.DataFrame:
    """A variant's predictions, written under `out`, as (shop_id, date, predicted)."""
    if variant == "bare":
        frame = pd.read_parquet(os.path.join(out, "predictions.parquet"))
    elif variant == "article":
        frame = pd.concat([pd.read_parquet(p) for p in sorted(glob.glob(f"{out}/predictions-*"))],
                          ignore_index=True).rename(columns={"predict": "predicted"})
    else:
        frame = pd.concat([pd.read_parquet(p) for p in sorted(glob.glob(f"{out}/predictions/part-*"))],
                          ignore_index=True)
    frame = frame[["shop_id", "date", "predicted"]].copy()
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    frame["shop_id"] = frame["shop_id"].astype(str)
    return frame.sort_values(["shop_id", "date"], ignore_index=True)


def compare_predictions(frames: dict[str, pd.DataFrame], reference: str = "bare") -> str:
    """'yes (n rows, max |diff| d)' when every variant predicts the same rows and values."""
    expected = frames[reference]
    worst = 0.0
    for name, frame in frames.items():
        if len(frame) != len(expected) or not frame[["shop_id", "date"]].equals(expected[["shop_id", "date"]]):
            return f"NO: {name} has {len(frame)} rows vs {len(expected)} ({reference})"
        diff = np.abs(frame["predicted"].to_numpy() - expected["predicted"].to_numpy())
        worst = max(worst, float(diff.max()) if len(diff) else 0.0)
        if not np.allclose(frame["predicted"], expected["predicted"], rtol=1e-9, atol=1e-6):
            return f"NO: {name} differs from {reference} by up to {worst:.3g}"
    return f"yes ({len(expected)} rows, max diff {worst:.1e})"


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), platform.processor())
    memory = psutil.virtual_memory().total / 2**30
    import apache_beam
    import sklearn

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return (f"{model}, {os.cpu_count()} logical cores ({len(os.sched_getaffinity(0))} usable), "
            f"{memory:.0f} GiB; Python {platform.python_version()}, Beam {apache_beam.__version__}, "
            f"scikit-learn {sklearn.__version__}; commit {commit}")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def report(medians: dict, agreement: dict, workers: int, repeats: int, header: str) -> str:
    lines = [f"# Benchmark {header}", "",
             f"Machine: {machine()}.", f"Workers: {workers} processes per variant; medians of {repeats} "
             "runs; wall and CPU in seconds, peak RSS of the process tree in MiB.", "",
             "| shops | model | bare wall | article wall | ours wall | ours/bare wall | ours/article wall "
             "| ours/bare CPU | ours/article CPU | bare RSS | article RSS | ours RSS | ours/bare RSS "
             "| ours/article RSS | predictions agree |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    cases = sorted({(s, m) for s, m, _ in medians})
    for shops, model in cases:
        get = lambda v: medians.get((shops, model, v))  # noqa: E731
        bare, article, ours = get("bare"), get("article"), get("ours")
        if not (bare and ours):
            continue
        def vs_article(value: str) -> str:
            return value if article else "not run"

        lines.append(
            f"| {shops} | {model} | {bare.wall:.1f} | {vs_article(article and f'{article.wall:.1f}')} "
            f"| {ours.wall:.1f} | **{ratio(ours.wall, bare.wall)}** "
            f"| {vs_article(article and ratio(ours.wall, article.wall))} "
            f"| {ratio(ours.cpu, bare.cpu)} | {vs_article(article and ratio(ours.cpu, article.cpu))} "
            f"| {bare.peak_rss / 2**20:.0f} | {vs_article(article and f'{article.peak_rss / 2**20:.0f}')} "
            f"| {ours.peak_rss / 2**20:.0f} | **{ratio(ours.peak_rss, bare.peak_rss)}** "
            f"| {vs_article(article and ratio(ours.peak_rss, article.peak_rss))} "
            f"| {agreement.get((shops, model), 'not checked')} |")
    lines += ["", "| shops | model | variant | wall s | CPU s | peak RSS MiB |", "|---:|---|---|---:|---:|---:|"]
    for (shops, model, variant), m in sorted(medians.items()):
        lines.append(f"| {shops} | {model} | {variant} | {m.wall:.2f} | {m.cpu:.2f} | {m.peak_rss / 2**20:.0f} |")
    lines += ["", "Scaling:", ""]
    for shops, model in cases:
        one, many = medians.get((shops, model, "ours_1proc")), medians.get((shops, model, "ours"))
        if one and many:
            lines.append(f"- {shops} shops, {model}: 1 process {one.wall:.1f} s, {workers} processes "
                         f"{many.wall:.1f} s, speed-up {ratio(one.wall, many.wall)}")
    for model in sorted({m for _, m in cases}):
        sizes = sorted(s for s, m in cases if m == model and (s, m, "ours") in medians)
        for small, large in zip(sizes, sizes[1:]):
            lines.append(f"- {model}, ours: {large} shops / {small} shops wall = "
                         f"{ratio(medians[(large, model, 'ours')].wall, medians[(small, model, 'ours')].wall)} "
                         f"(linear would be {large / small:.1f})")
    lines += ["", "Targets (issue 6, on 2 cores): " + "; ".join(f"{k} <= {v}" if "least" not in k
                                                               else f"{k} {v}" for k, v in TARGETS.items())]
    return "\n".join(lines) + "\n"


def models_report(runs: dict, agreement: dict, workers: int, repeats: int, header: str) -> str:
    """One row per registry model: medians of bare and ours, ours / bare (wall and CPU), agreement."""
    lines = [f"# Benchmark per model {header}", "",
             f"Machine: {machine()}.",
             f"Data: {MODELS_SHOPS} shops x {MODELS_YEARS} years daily, windows of 3 years: "
             f"{MODELS_SHOPS * (MODELS_YEARS - 2)} key x windows per model. {workers} processes per variant; "
             f"medians of {repeats} interleaved runs (bare, ours, bare, ...); seconds.", "",
             "| model | bare wall | ours wall | **ours / bare wall** | bare CPU | ours CPU | ours / bare CPU "
             "| runs (ours walls) | predictions agree |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for model, by_variant in runs.items():
        bare, ours = by_variant.get("bare", []), by_variant.get("ours", [])
        if not (bare and ours):
            lines.append(f"| {model} | {'failed' if not bare else ''} | {'failed' if not ours else ''} "
                         "| n/a | | | | | |")
            continue
        bare_wall, ours_wall = statistics.median(r.wall for r in bare), statistics.median(r.wall for r in ours)
        bare_cpu, ours_cpu = statistics.median(r.cpu for r in bare), statistics.median(r.cpu for r in ours)
        lines.append(f"| {model} | {bare_wall:.1f} | {ours_wall:.1f} | **{ratio(ours_wall, bare_wall)}** "
                     f"| {bare_cpu:.1f} | {ours_cpu:.1f} | {ratio(ours_cpu, bare_cpu)} "
                     f"| {', '.join(f'{r.wall:.1f}' for r in ours)} | {agreement.get(model, 'not checked')} |")
    lines += ["", f"Target (issue 17): ours / bare wall <= {MODELS_TARGET} for each model."]
    return "\n".join(lines) + "\n"


def models_to_run(listed: str) -> list[str]:
    """--models' value: "all" (every registry model) or a comma-separated list of registry names."""
    from pipeline.models import registry

    chosen = list(registry.REGISTRY) if listed == "all" else [m for m in listed.split(",") if m]
    unknown = sorted(set(chosen) - set(registry.REGISTRY))
    if unknown or not chosen:
        raise ValueError(f"unknown model(s) {unknown or listed!r}; known: {', '.join(registry.REGISTRY)}")
    return chosen


def run_models(models: list[str], workers: int, repeats: int, timeout: float) -> int:
    """--models: bare and ours, interleaved, on the same 280 key x windows, for each model."""
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    runs, agreement, failures = {}, {}, []
    for model in models:
        runs[model] = {"bare": [], "ours": []}
        for repeat in range(repeats):
            for variant in ("bare", "ours"):
                out = output_dir(variant, MODELS_SHOPS, model, MODELS_YEARS)
                shutil.rmtree(out, ignore_errors=True)
                os.makedirs(out)
                result = measure(command(variant, MODELS_SHOPS, model, workers, MODELS_YEARS),
                                 os.path.join(out, "log.txt"), timeout)
                print(f"[{model} {variant} #{repeat + 1}] wall {result.wall:.1f}s cpu {result.cpu:.1f}s "
                      f"rc {result.returncode}", file=sys.stderr, flush=True)
                if result.returncode != 0:
                    failures.append(f"{model} {variant}: exit {result.returncode}, see {out}/log.txt")
                    continue
                runs[model][variant].append(result)
            if repeat == 0 and all(runs[model].values()):
                agreement[model] = compare_predictions({
                    v: read_predictions(v, output_dir(v, MODELS_SHOPS, model, MODELS_YEARS)) for v in ("bare", "ours")})
                print(f"[{model}] predictions agree: {agreement[model]}", file=sys.stderr)
    return publish_table(models_report(runs, agreement, workers, repeats, started), failures, agreement,
                         f"{started}-models.md")


def publish_table(text: str, failures: list[str], agreement: dict, name: str) -> int:
    """Prints the table (with any failed runs) and keeps it under bench/results/; the exit code says
    whether every run finished and every variant's predictions agreed."""
    if failures:
        text += "\nFailed runs:\n" + "\n".join(f"- {f}" for f in failures) + "\n"
    print(text)
    os.makedirs(RESULTS_DIR, exist_ok=True)
    with open(os.path.join(RESULTS_DIR, name), "w") as handle:
        handle.write(text)
    return 1 if failures or any(a.startswith("NO") for a in agreement.values()) else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark: ours vs the article's approach vs a bare loop.")
    parser.add_argument("--quick", action="store_true", help="50 shops only")
    parser.add_argument("--cases", default="", help="e.g. 400:gbr,400:ridge (overrides the matrix)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-speedup", action="store_true", help="skip the 1-process runs (gbr)")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per run")
    parser.add_argument("--models", nargs="?", const="all", default=None, metavar="gbr,hist_gbr,...",
                        help=f"ours / bare per registry model on {MODELS_SHOPS} shops x {MODELS_YEARS} years "
                             "(all models unless listed); nothing else runs")
    args = parser.parse_args(argv)
    if args.models:
        try:
            chosen = models_to_run(args.models)
        except ValueError as exc:
            parser.error(str(exc))
        return run_models(chosen, args.workers, args.repeats, args.timeout)

    if args.cases:
        cases = [(int(c.split(":")[0]), c.split(":")[1]) for c in args.cases.split(",")]
    else:
        cases = QUICK_MATRIX if args.quick else FULL_MATRIX
    variants = [v for v in args.variants.split(",") if v]
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    medians, agreement, failures = {}, {}, []
    for shops, model in cases:
        case_variants = variants + (["ours_1proc"] if model == "gbr" and not args.no_speedup else [])
        runs = {v: [] for v in case_variants}
        for repeat in range(args.repeats):
            for variant in case_variants:
                out = output_dir(variant, shops, model)
                shutil.rmtree(out, ignore_errors=True)
                os.makedirs(out)
                result = measure(command(variant, shops, model, args.workers), os.path.join(out, "log.txt"),
                                 args.timeout)
                print(f"[{shops} {model} {variant} #{repeat + 1}] wall {result.wall:.1f}s cpu {result.cpu:.1f}s "
                      f"rss {result.peak_rss / 2**20:.0f} MiB rc {result.returncode}", file=sys.stderr, flush=True)
                if result.returncode != 0:
                    failures.append(f"{shops} {model} {variant}: exit {result.returncode}, see {out}/log.txt")
                    continue
                runs[variant].append(result)
            if repeat == 0:
                compared = [v for v in VARIANTS if v in variants and runs[v]]
                agreement[(shops, model)] = compare_predictions(
                    {v: read_predictions(v, output_dir(v, shops, model)) for v in compared}, reference=compared[0])
                print(f"[{shops} {model}] predictions agree: {agreement[(shops, model)]}", file=sys.stderr)
        for variant, results in runs.items():
            if results:
                medians[(shops, model, variant)] = Measurement(
                    statistics.median(r.wall for r in results), statistics.median(r.cpu for r in results),
                    int(statistics.median(r.peak_rss for r in results)), 0)
    return publish_table(report(medians, agreement, args.workers, args.repeats, started), failures, agreement,
                         f"{started}.md")


if __name__ == "__main__":
    sys.exit(main())
