"""Runs the benchmark matrix and prints one markdown table (also written to bench/results/).

Each variant runs as its own process, several times, interleaved (bare, article, ours, spark, bare,
...), on the same generated data and the same cores:

- bare:    bench/bare.py, a pandas + scikit-learn loop parallelised with joblib (the floor);
- article: bench/article.py, the article's pipeline on the current Beam API (the reference);
- ours:    `python -m pipeline`, default settings;
- spark:   bench/spark_pandas.py, Spark's `groupBy(key).applyInPandas(...)` ("many models") on
           local[--workers], run with bench/.venv-spark/bin/python (`make bench-spark-env`); left out,
           with a word on stderr, when that venv is missing;
- ours_1proc: the same with --direct_num_workers=1 (for the 2-vs-1 process speed-up; gbr only).

`--models` (issue 17): every registry model, bare and ours only, on one dataset of 20 shops x 16
years daily (20 x 14 = 280 key x windows, 102,280 predictions): one table of ours / bare per model.

`--scaling`: ridge on 400, 1,000, 2,000 and 4,000 shops (or the sizes given), bare and ours (and
spark when its venv exists and --variants names it): wall, wall per shop, CPU, the memory sum and
the largest single process, per role.

Measured per run: wall time; CPU time (user + sys of the process and every descendant, from
os.wait4: Beam's and joblib's workers are reaped by their parents, and descendants orphaned on the
way, such as Spark's Python workers when the JVM exits, are reparented to this process, which is
their subreaper while it measures, and reaped here); peak memory as the highest sum of the RSS of
the whole process tree, sampled with psutil every 50 ms (shared pages count once per process, the
same way for every variant); and the largest RSS any single process reached, overall and per role
(from the command line: `launcher` is the process started, `worker` Beam's SDK workers, joblib's
loky workers and Spark's Python workers, `jvm` Spark's JVM).
Reported: medians. After the first repetition the variants' predictions are checked to agree
(same rows, same values within 1e-6).

    python -m bench.run_bench             # full matrix (long)
    python -m bench.run_bench --quick     # 50 shops only
    python -m bench.run_bench --models    # every registry model, 280 key x windows
    python -m bench.run_bench --scaling   # ridge, 400 to 4,000 shops
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import datetime
import glob
import os
import platform
import shutil
import signal
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
VARIANTS = ("bare", "article", "ours", "spark")
SPARK_PYTHON = os.path.join(HERE, ".venv-spark", "bin", "python")
SCALING_SHOPS, SCALING_MODEL = (400, 1000, 2000, 4000), "ridge"
SCALING_VARIANTS = ("bare", "ours", "spark")
SAMPLE_EVERY = 0.05
LEFTOVER_GRACE = 30.0  # seconds the measured run's orphaned processes get to exit once it has
# Roles of the processes of a measured tree, from their command line (list elements, so that a
# `sh -c "python -m ..."` wrapper is not taken for what it starts). The process started is the launcher.
WORKER_MODULES = ("apache_beam.runners.worker.sdk_worker_main",  # Beam's local runner
                  "joblib.externals.loky.backend.popen_loky_posix",  # joblib's loky workers
                  "pyspark.daemon")  # Spark's Python workers (forked from the daemon: same command line)
# Our local workers are forked from the fork server (pipeline/utils/fork_server.py) and keep its command line;
# the server counts as a worker too (the workers' pages are its own, shared); its small clients count as neither.
FORK_SERVER = ("pipeline.utils.fork_server", "serve")
ROLES = ("launcher", "worker", "jvm")
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
    peak_rss: int  # the highest sum of the RSS of the whole process tree (over time)
    returncode: int
    peak_process: int = 0  # the largest RSS any single process of the tree reached
    peak_by_role: dict = dataclasses.field(default_factory=dict)  # role -> the largest RSS of one such process
    cpu_sampled: float = 0.0  # part of `cpu` sampled, not reaped: processes whose parent ignores SIGCHLD


def median_of(results: list[Measurement]) -> Measurement:
    """Medians of every field (a role's over the runs where it appeared)."""
    roles = sorted({role for r in results for role in r.peak_by_role})
    return Measurement(
        statistics.median(r.wall for r in results), statistics.median(r.cpu for r in results),
        int(statistics.median(r.peak_rss for r in results)), 0,
        int(statistics.median(r.peak_process for r in results)),
        {role: int(statistics.median(r.peak_by_role[role] for r in results if role in r.peak_by_role))
         for role in roles},
        statistics.median(r.cpu_sampled for r in results))


def data_path(shops: int, years: int = 6) -> str:
    """The article's schema, `shops` shops x `years` years daily, generated once per size."""
    path = os.path.join(DATA_DIR, f"shops_{shops}.parquet" if years == 6 else f"shops_{shops}_y{years}.parquet")
    if not os.path.exists(path):
        from pipeline.io.sources import sample_data

        os.makedirs(DATA_DIR, exist_ok=True)
        sample_data.write(sample_data.generate(shops, years=years, seed=7, messy=False), path + ".tmp.parquet")
        os.replace(path + ".tmp.parquet", path)
    return path


def output_dir(variant: str, shops: int, model: str, years: int = 6) -> str:
    return os.path.join(DATA_DIR, "out", f"{variant}_{shops}_{model}" + ("" if years == 6 else f"_y{years}"))


def command(variant: str, shops: int, model: str, workers: int, years: int = 6) -> list[str]:
    data, out = data_path(shops, years), output_dir(variant, shops, model, years)
    python = sys.executable
    if variant == "spark":
        return [SPARK_PYTHON, "-m", "bench.spark_pandas", f"--input={data}", f"--output={out}",
                f"--model={model}", f"--workers={workers}"]
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


def role_of(cmdline: list[str]) -> str | None:
    """'worker' or 'jvm' from a command line; None when it says neither (a shell, a resource tracker,
    a forked child before its exec: asked again at the next sample)."""
    if any(module in cmdline for module in WORKER_MODULES) or all(part in cmdline for part in FORK_SERVER):
        return "worker"
    if cmdline and os.path.basename(cmdline[0]) == "java":
        return "jvm"
    return None


def set_subreaper(on: bool) -> bool:
    """Linux: this process adopts its descendants orphaned while `on` (instead of init), so that
    measure() can reap them and count their CPU. False where that is not available."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, int(on), 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def ignores_sigchld(pid: int) -> bool:
    """Whether `pid` ignores SIGCHLD: the kernel then reaps its children itself and their CPU time
    reaches no wait4 (getrusage(2)). Spark's Python daemon does so with the workers it forks."""
    try:
        with open(f"/proc/{pid}/status") as status:
            ignored = next(int(line.split()[1], 16) for line in status if line.startswith("SigIgn:"))
    except (OSError, StopIteration, ValueError):
        return False
    return bool(ignored >> (signal.SIGCHLD - 1) & 1)


class TreeSampler:
    """Every SAMPLE_EVERY seconds, the RSS of every process of the measured tree: this process's
    children started since `ignore` was taken (the measured process, and its orphans adopted here)
    and all their descendants. Keeps the peak of the sum, the largest single process, and per role;
    and the last CPU time seen of each process whose parent ignores SIGCHLD (its CPU reaches no wait4)."""

    def __init__(self, root_pid: int, ignore: set[int]):
        self.root_pid, self.ignore = root_pid, ignore
        self.peak_sum, self.peak_process, self.peak_by_role = 0, 0, {}
        self.roles: dict[int, str] = {}
        self.unreaped_cpu: dict[int, float] = {}  # pid -> user + sys (its own and its reaped children's)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def members(self) -> list[psutil.Process]:
        found = {}
        for top in psutil.Process().children():
            if top.pid in self.ignore:
                continue
            found[top.pid] = top
            try:
                found.update((p.pid, p) for p in top.children(recursive=True))
            except psutil.Error:
                pass
        return list(found.values())

    def role(self, process: psutil.Process) -> str:
        if process.pid == self.root_pid:
            return "launcher"
        if process.pid not in self.roles:
            try:
                role = role_of(process.cmdline())
            except psutil.Error:
                role = None
            if role is None:
                return "other"
            self.roles[process.pid] = role
        return self.roles[process.pid]

    def sample(self) -> None:
        total = 0
        for process in self.members():
            try:
                with process.oneshot():
                    rss = process.memory_info().rss
                    if process.pid in self.unreaped_cpu or (process.pid != self.root_pid
                                                            and ignores_sigchld(process.ppid())):
                        times = process.cpu_times()
                        self.unreaped_cpu[process.pid] = (times.user + times.system + times.children_user
                                                          + times.children_system)
            except psutil.Error:
                continue
            total += rss
            role = self.role(process)
            self.peak_process = max(self.peak_process, rss)
            self.peak_by_role[role] = max(self.peak_by_role.get(role, 0), rss)
        self.peak_sum = max(self.peak_sum, total)

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(SAMPLE_EVERY)


def reap_leftovers(ignore: set[int], grace: float) -> tuple[float, int, set[int]]:
    """Waits up to `grace` seconds for the adopted orphans of the measured run to exit, kills those
    still there, reaps them all; (their CPU seconds with their own reaped descendants', number killed,
    their pids)."""
    cpu, killed, reaped_pids, deadline = 0.0, 0, set(), time.monotonic() + grace
    while True:
        left = [p.pid for p in psutil.Process().children() if p.pid not in ignore]
        if not left:
            return cpu, killed, reaped_pids
        if time.monotonic() > deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
        for pid in left:
            try:
                reaped, _, usage = os.wait4(pid, 0 if time.monotonic() > deadline else os.WNOHANG)
            except ChildProcessError:
                continue
            if reaped:
                cpu += usage.ru_utime + usage.ru_stime
                reaped_pids.add(reaped)
        time.sleep(0.02)


def measure(argv: list[str], log_path: str, timeout: float, grace: float = LEFTOVER_GRACE) -> Measurement:
    """Runs argv; wall (until it exits), CPU of the whole process tree (reaped by its parents, or
    orphaned and reaped here, or sampled for processes whose parent ignores SIGCHLD), peak RSS of the
    live process tree (summed, and per process and role)."""
    ignore = {p.pid for p in psutil.Process().children()}
    adopting = set_subreaper(True)
    try:
        with open(log_path, "wb") as log:
            started = time.perf_counter()
            process = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        sampler = TreeSampler(process.pid, ignore)
        sampler.thread.start()
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        leftover_cpu, killed, adopted = reap_leftovers(ignore, grace) if adopting else (0.0, 0, set())
        sampler.done.set()
        sampler.thread.join()
    finally:
        if adopting:
            set_subreaper(False)
    if killed:
        print(f"measure: killed {killed} process(es) of {argv[:3]} still running {grace:.0f} s after it exited",
              file=sys.stderr)
    sampled = sum(cpu for pid, cpu in sampler.unreaped_cpu.items() if pid not in adopted)
    return Measurement(wall, usage.ru_utime + usage.ru_stime + leftover_cpu + sampled, sampler.peak_sum,
                       process.returncode, sampler.peak_process,
                       {role: sampler.peak_by_role[role] for role in ROLES if role in sampler.peak_by_role}, sampled)


def read_predictions(variant: str, out: str) -> pd.DataFrame:
    """A variant's predictions, written under `out`, as (shop_id, date, predicted)."""
    if variant == "bare":
        frame = pd.read_parquet(os.path.join(out, "predictions.parquet"))
    elif variant == "article":
        frame = pd.concat([pd.read_parquet(p) for p in sorted(glob.glob(f"{out}/predictions-*"))],
                          ignore_index=True).rename(columns={"predict": "predicted"})
    elif variant == "spark":  # Spark's part files, as applyInPandas' schema wrote them
        frame = pd.concat([pd.read_parquet(p) for p in sorted(glob.glob(f"{out}/predictions/part-*.parquet"))],
                          ignore_index=True)
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


def machine(spark: bool = False) -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), platform.processor())
    memory = psutil.virtual_memory().total / 2**30
    import apache_beam
    import sklearn

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return (f"{model}, {os.cpu_count()} logical cores ({len(os.sched_getaffinity(0))} usable), "
            f"{memory:.0f} GiB; Python {platform.python_version()}, Beam {apache_beam.__version__}, "
            f"scikit-learn {sklearn.__version__}{spark_versions() if spark else ''}; commit {commit}")


def spark_versions() -> str:
    """', pyspark X (pandas Y) on <java -version>' from bench/.venv-spark, without starting it."""
    found = {}
    for name in ("pyspark", "pandas"):
        dist = glob.glob(os.path.join(HERE, ".venv-spark", "lib", "python*", "site-packages", f"{name}-*.dist-info"))
        found[name] = os.path.basename(dist[0])[len(name) + 1:-len(".dist-info")] if dist else "?"
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30).stderr
        java = java.splitlines()[0].strip() if java else "java ?"
    except (OSError, subprocess.TimeoutExpired):
        java = "no java on PATH"
    return f", pyspark {found['pyspark']} (pandas {found['pandas']}) on {java}"


def spark_available(variants: list[str]) -> list[str]:
    """`variants` without spark when its venv is missing (said on stderr)."""
    if "spark" in variants and not os.access(SPARK_PYTHON, os.X_OK):
        print(f"spark variant NOT RUN: {os.path.relpath(SPARK_PYTHON, ROOT)} is missing; build it with "
              "`make bench-spark-env` (pyspark, pandas 2.x; needs Java 17). Going on without it.",
              file=sys.stderr, flush=True)
        return [v for v in variants if v != "spark"]
    return variants


def mib(value: int | None) -> str:
    return f"{value / 2**20:.0f}" if value else "n/a"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def report(medians: dict, agreement: dict, workers: int, repeats: int, header: str, spark: bool = False) -> str:
    lines = [f"# Benchmark {header}", "",
             f"Machine: {machine(spark)}.", f"Workers: {workers} processes per variant (Spark: local[{workers}]); "
             f"medians of {repeats} runs; wall and CPU in seconds; RSS in MiB: the peak of the process tree's "
             "sum, and for ours the largest single worker process.", "",
             "| shops | model | bare wall | article wall | spark wall | ours wall | ours/bare wall "
             "| ours/article wall | ours/spark wall | ours/bare CPU | ours/article CPU | ours/spark CPU "
             "| bare RSS | article RSS | spark RSS | ours RSS | ours/bare RSS | ours/article RSS | ours/spark RSS "
             "| ours worker peak | predictions agree |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    cases = sorted({(s, m) for s, m, _ in medians})
    for shops, model in cases:
        get = lambda v: medians.get((shops, model, v))  # noqa: E731
        bare, article, spark_run, ours = get("bare"), get("article"), get("spark"), get("ours")
        if not (bare and ours):
            continue

        def other(run, text) -> str:
            return text(run) if run else "not run"

        lines.append(
            f"| {shops} | {model} | {bare.wall:.1f} | {other(article, lambda r: f'{r.wall:.1f}')} "
            f"| {other(spark_run, lambda r: f'{r.wall:.1f}')} "
            f"| {ours.wall:.1f} | **{ratio(ours.wall, bare.wall)}** "
            f"| {other(article, lambda r: ratio(ours.wall, r.wall))} "
            f"| {other(spark_run, lambda r: f'**{ratio(ours.wall, r.wall)}**')} "
            f"| {ratio(ours.cpu, bare.cpu)} | {other(article, lambda r: ratio(ours.cpu, r.cpu))} "
            f"| {other(spark_run, lambda r: ratio(ours.cpu, r.cpu))} "
            f"| {mib(bare.peak_rss)} | {other(article, lambda r: mib(r.peak_rss))} "
            f"| {other(spark_run, lambda r: mib(r.peak_rss))} "
            f"| {mib(ours.peak_rss)} | **{ratio(ours.peak_rss, bare.peak_rss)}** "
            f"| {other(article, lambda r: ratio(ours.peak_rss, r.peak_rss))} "
            f"| {other(spark_run, lambda r: ratio(ours.peak_rss, r.peak_rss))} "
            f"| {mib(ours.peak_by_role.get('worker'))} "
            f"| {agreement.get((shops, model), 'not checked')} |")
    lines += ["", "Per variant (memory: the peak of the summed RSS of the process tree; the largest single "
              "process; the largest of each role: launcher = the process started, worker = Beam SDK / loky / "
              "Spark Python workers, JVM = Spark's):", "",
              "| shops | model | variant | wall s | CPU s | peak RSS MiB (sum) | largest process MiB "
              "| launcher MiB | largest worker MiB | JVM MiB |",
              "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (shops, model, variant), m in sorted(medians.items()):
        roles = m.peak_by_role
        lines.append(f"| {shops} | {model} | {variant} | {m.wall:.2f} | {m.cpu:.2f} | {mib(m.peak_rss)} "
                     f"| {mib(m.peak_process)} | {mib(roles.get('launcher'))} | {mib(roles.get('worker'))} "
                     f"| {mib(roles.get('jvm'))} |")
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


def scaling_report(medians: dict, agreement: dict, model: str, workers: int, repeats: int, header: str,
                   spark: bool = False) -> str:
    """One row per size x variant: wall, wall per shop, CPU, memory (sum and per process)."""
    sizes = sorted({shops for shops, _ in medians})
    variants = [v for v in SCALING_VARIANTS if any(variant == v for _, variant in medians)]
    lines = [f"# Benchmark scaling {header}", "",
             f"Machine: {machine(spark)}.",
             f"Model {model}, N shops x 6 years daily (4 windows per shop); {workers} processes per variant "
             f"(Spark: local[{workers}]); medians of {repeats} interleaved runs. Memory in MiB: **sum** = the peak "
             "over time of the summed RSS of the whole process tree; **largest process** = the largest RSS one "
             "process reached; launcher = the process started (for ours: Beam's runner too), worker = the largest "
             "worker process (Beam SDK worker / loky / Spark Python worker), JVM = Spark's.", "",
             "| shops | variant | wall s | ms / shop | / bare wall | CPU s | memory sum MiB | largest process MiB "
             "| launcher MiB | largest worker MiB | JVM MiB | predictions agree |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for shops in sizes:
        bare = medians.get((shops, "bare"))
        for variant in variants:
            m = medians.get((shops, variant))
            if not m:
                lines.append(f"| {shops} | {variant} | failed | | | | | | | | | |")
                continue
            roles = m.peak_by_role
            lines.append(
                f"| {shops} | {variant} | {m.wall:.1f} | {1000 * m.wall / shops:.1f} "
                f"| {ratio(m.wall, bare.wall) if bare else 'n/a'} | {m.cpu:.1f} | {mib(m.peak_rss)} "
                f"| {mib(m.peak_process)} | {mib(roles.get('launcher'))} | {mib(roles.get('worker'))} "
                f"| {mib(roles.get('jvm'))} | {agreement.get(shops, 'not checked') if variant == variants[0] else ''} |")
    lines += ["", "Growth from the smallest to the largest size:", ""]
    for variant in variants:
        ran = [shops for shops in sizes if (shops, variant) in medians]
        if len(ran) >= 2:
            small, large = medians[(ran[0], variant)], medians[(ran[-1], variant)]
            lines.append(f"- {variant}: {ran[-1]} / {ran[0]} shops: wall x{ratio(large.wall, small.wall)}, "
                         f"memory sum x{ratio(large.peak_rss, small.peak_rss)}, largest process "
                         f"x{ratio(large.peak_process, small.peak_process)} (data x{ran[-1] / ran[0]:.1f})")
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


def run_case(shops: int, model: str, variants: list[str], workers: int, repeats: int, timeout: float,
             failures: list[str]) -> tuple[dict, str | None]:
    """`variants` interleaved `repeats` times on one case; (variant -> median Measurement, agreement of
    the predictions of the compared variants after the first repetition)."""
    runs = {v: [] for v in variants}
    agreement = None
    for repeat in range(repeats):
        for variant in variants:
            out = output_dir(variant, shops, model)
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            result = measure(command(variant, shops, model, workers), os.path.join(out, "log.txt"), timeout)
            print(f"[{shops} {model} {variant} #{repeat + 1}] wall {result.wall:.1f}s cpu {result.cpu:.1f}s "
                  + (f"({result.cpu_sampled:.1f}s of it sampled) " if result.cpu_sampled else "")
                  + f"rss {mib(result.peak_rss)} MiB (largest process {mib(result.peak_process)}, per role "
                  + ", ".join(f"{role} {mib(rss)}" for role, rss in result.peak_by_role.items())
                  + f") rc {result.returncode}", file=sys.stderr, flush=True)
            if result.returncode != 0:
                failures.append(f"{shops} {model} {variant}: exit {result.returncode}, see {out}/log.txt")
                continue
            runs[variant].append(result)
        if repeat == 0:
            compared = [v for v in VARIANTS if v in variants and runs[v]]
            if compared:
                agreement = compare_predictions(
                    {v: read_predictions(v, output_dir(v, shops, model)) for v in compared}, reference=compared[0])
                print(f"[{shops} {model}] predictions agree ({', '.join(compared)}): {agreement}", file=sys.stderr)
    return {v: median_of(results) for v, results in runs.items() if results}, agreement


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(size) for size in text.split(",") if size.strip()})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"--scaling takes shop counts like 400,1000,2000 (got {text!r})")
    return sizes


def run_scaling(sizes: list[int], model: str, variants: list[str], workers: int, repeats: int,
                timeout: float) -> int:
    """--scaling: bare, ours (and spark) at each size; one table of wall, wall per shop, CPU, memory."""
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    medians, agreement, failures = {}, {}, []
    for shops in sizes:
        generating = time.perf_counter()
        data_path(shops)
        print(f"[{shops}] data ready in {time.perf_counter() - generating:.1f} s", file=sys.stderr, flush=True)
        by_variant, agreed = run_case(shops, model, variants, workers, repeats, timeout, failures)
        medians.update(((shops, v), m) for v, m in by_variant.items())
        if agreed:
            agreement[shops] = agreed
    return publish_table(scaling_report(medians, agreement, model, workers, repeats, started, "spark" in variants),
                         failures, agreement, f"{started}-scaling.md")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark: ours vs the article's approach vs a bare loop "
                                                 "vs Spark's applyInPandas.")
    parser.add_argument("--quick", action="store_true", help="50 shops only")
    parser.add_argument("--cases", default="", help="e.g. 400:gbr,400:ridge (overrides the matrix)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="any of bare,article,ours,spark (spark needs bench/.venv-spark: make bench-spark-env)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-speedup", action="store_true", help="skip the 1-process runs (gbr)")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per run")
    parser.add_argument("--models", nargs="?", const="all", default=None, metavar="gbr,hist_gbr,...",
                        help=f"ours / bare per registry model on {MODELS_SHOPS} shops x {MODELS_YEARS} years "
                             "(all models unless listed); nothing else runs")
    parser.add_argument("--scaling", nargs="?", const=",".join(map(str, SCALING_SHOPS)), default=None,
                        metavar="400,1000,...", help="bare, ours (and spark if its venv exists and --variants "
                        f"names it) with --scaling-model at each size (default {SCALING_SHOPS}); nothing else runs")
    parser.add_argument("--scaling-model", default=SCALING_MODEL)
    args = parser.parse_args(argv)
    if args.models:
        try:
            chosen = models_to_run(args.models)
        except ValueError as exc:
            parser.error(str(exc))
        return run_models(chosen, args.workers, args.repeats, args.timeout)

    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS) - {"ours_1proc"})
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    variants = spark_available(variants)
    if args.scaling:
        try:
            sizes = parse_sizes(args.scaling)
        except ValueError as exc:
            parser.error(str(exc))
        return run_scaling(sizes, args.scaling_model, [v for v in SCALING_VARIANTS if v in variants or v != "spark"],
                           args.workers, args.repeats, args.timeout)

    if args.cases:
        cases = [(int(c.split(":")[0]), c.split(":")[1]) for c in args.cases.split(",")]
    else:
        cases = QUICK_MATRIX if args.quick else FULL_MATRIX
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    medians, agreement, failures = {}, {}, []
    for shops, model in cases:
        case_variants = variants + (["ours_1proc"] if model == "gbr" and not args.no_speedup else [])
        by_variant, agreed = run_case(shops, model, case_variants, args.workers, args.repeats, args.timeout,
                                      failures)
        medians.update(((shops, model, v), m) for v, m in by_variant.items())
        if agreed:
            agreement[(shops, model)] = agreed
    return publish_table(report(medians, agreement, args.workers, args.repeats, started, "spark" in variants),
                         failures, agreement, f"{started}.md")


if __name__ == "__main__":
    sys.exit(main())
