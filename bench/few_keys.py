"""Few keys: the fan-out of the key x window fits (pipeline/stages/prepare/fanout.py), measured.

    python -m bench.few_keys                                   2 and 3 shops x 32 years, gbr, 1 and 2 workers,
                                                               --fan_out auto and never, medians of 3
    python -m bench.few_keys --cases 400:ridge:6 --fan-out auto --workers 2 --tree main=/tmp/main-src
                                                               the common case against another source tree

Every run is a whole `python -m pipeline` process (bench.run_bench.measure: wall, CPU of the process
tree, peak RSS), the runs interleaved (case, tree, mode, workers, then again), each preceded by the
load average, which the table reports: wall times are only comparable on an otherwise quiet machine.
`--tree label=path` runs the pipeline of another source tree (e.g. `git archive main | tar -x -C dir`);
the mode `default` passes no --fan_out (for a tree without it). Writes bench/results/few_keys_<time>.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time

import psutil

from bench.run_bench import DATA_DIR, RESULTS_DIR, ROOT, data_path, measure

DEFAULT_CASES = "2:gbr:32,3:gbr:32"


def parse_cases(text: str) -> list[tuple[int, str, int]]:
    """"2:gbr:32,400:ridge:6" -> [(shops, model, years), ...]."""
    cases = []
    for part in text.split(","):
        shops, model, years = part.split(":")
        cases.append((int(shops), model, int(years)))
    return cases


def parse_trees(texts: list[str]) -> dict[str, str]:
    trees = {}
    for text in texts or ["this=" + ROOT]:
        label, _, path = text.partition("=")
        trees[label] = os.path.abspath(path or ROOT)
    return trees


def command(shops: int, model: str, years: int, mode: str, workers: int, out: str,
            model_params: str = "") -> list[str]:
    argv = [sys.executable, "-m", "pipeline", f"--input={data_path(shops, years)}", f"--output={out}",
            f"--model={model}", "--run_id=bench", "--seed=0", f"--direct_num_workers={workers}"]
    argv += [f"--model_params={model_params}"] if model_params else []
    return argv + ([] if mode == "default" else [f"--fan_out={mode}"])


def fanned_out(out: str):
    try:
        with open(os.path.join(out, "summary.json")) as handle:
            return json.load(handle).get("fan_out", {}).get("fanned_out")
    except (OSError, ValueError):
        return None


def wait_for_quiet(busy_below: float, patience: float = 900.0) -> float:
    """Waits (up to `patience` s) until the machine's CPU use over 3 s is below `busy_below` percent of all
    cores; returns the last sample."""
    waited, busy = 0.0, psutil.cpu_percent(interval=3)
    while busy >= busy_below and waited < patience:
        time.sleep(7)
        waited += 10
        busy = psutil.cpu_percent(interval=3)
    return busy


def run(cases, trees, modes, workers, repeats, timeout, busy_below=None, model_params="") -> tuple[dict, list[str]]:
    runs, failures = {}, []
    for repeat in range(repeats):
        for shops, model, years in cases:
            for label, tree in trees.items():
                for mode in modes:
                    for count in workers:
                        name = (shops, model, years, label, mode, count)
                        out = os.path.join(DATA_DIR, "out", "few_keys_" + "_".join(map(str, name)))
                        busy = wait_for_quiet(busy_below) if busy_below else None
                        load = os.getloadavg()[0]
                        os.makedirs(out, exist_ok=True)
                        # In the tree's folder: `python -m` imports the pipeline package of its working directory.
                        argv = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', tree,
                                *command(shops, model, years, mode, count, out, model_params)]
                        result = measure(argv, out + ".log", timeout)
                        spread = fanned_out(out)
                        print(f"[{repeat + 1}/{repeats}] {name}: {result.wall:.1f} s wall, {result.cpu:.1f} s CPU, "
                              f"load {load:.2f}, busy before {busy}%, fanned out: {spread}, rc {result.returncode}",
                              flush=True)
                        if result.returncode:
                            failures.append(f"{name}: exit {result.returncode}")
                        runs.setdefault(name, []).append((result, load, spread))
    return runs, failures


def report(runs: dict, repeats: int) -> str:
    lines = [f"Medians of {repeats} (whole processes; load = 1-minute load average before each run, min-max).", "",
             "| shops | model | years | tree | fan_out | workers | wall s | CPU s | peak RSS MiB | fanned out | load |",
             "|---:|---|---:|---|---|---:|---:|---:|---:|---|---|"]
    medians = {}
    for name, results in runs.items():
        walls = [r.wall for r, _, _ in results]
        medians[name] = statistics.median(walls)
        loads = [load for _, load, _ in results]
        spread = {s for _, _, s in results}
        lines.append(f"| {' | '.join(map(str, name[:-1]))} | {name[-1]} | {medians[name]:.1f} | "
                     f"{statistics.median(r.cpu for r, _, _ in results):.1f} | "
                     f"{statistics.median(r.peak_rss for r, _, _ in results) / 2**20:.0f} | "
                     f"{'/'.join(map(str, sorted(spread, key=str)))} | {min(loads):.2f}-{max(loads):.2f} |")
    speedups = []
    for name, wall in medians.items():
        one = medians.get(name[:-1] + (1,))
        if name[-1] > 1 and one:
            speedups.append(f"- {name[0]} shops, {name[1]}, {name[2]} years, {name[3]}, fan_out={name[4]}: "
                            f"{name[-1]} workers vs 1: {one:.1f} s -> {wall:.1f} s, speed-up **{one / wall:.2f}**")
    return "\n".join(lines + ([""] + speedups if speedups else []))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=DEFAULT_CASES, help="shops:model:years,... (default %(default)s)")
    parser.add_argument("--fan-out", default="auto,never", help="modes, among auto, always, never, default")
    parser.add_argument("--workers", default="1,2", help="--direct_num_workers values")
    parser.add_argument("--tree", action="append", help="label=path of a source tree (default: this one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--model-params", default="", help="--model_params of every run (JSON)")
    parser.add_argument("--wait-quiet", type=float, metavar="PERCENT",
                        help="before each run, wait (up to 15 minutes) until the CPU use of the whole machine "
                             "over 3 s is below PERCENT")
    args = parser.parse_args(argv)
    cases, trees = parse_cases(args.cases), parse_trees(args.tree)
    modes, workers = args.fan_out.split(","), [int(w) for w in args.workers.split(",")]
    for shops, _, years in cases:
        data_path(shops, years)  # generated once, before any timed run
    runs, failures = run(cases, trees, modes, workers, args.repeats, args.timeout, args.wait_quiet,
                         args.model_params)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    text = f"`python -m bench.few_keys {' '.join(argv if argv is not None else sys.argv[1:])}` ({stamp})\n\n"
    text += report(runs, args.repeats)
    os.makedirs(RESULTS_DIR, exist_ok=True)
    with open(os.path.join(RESULTS_DIR, f"few_keys_{stamp}.md"), "w") as handle:
        handle.write(text + "\n")
    print("\n" + text)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
