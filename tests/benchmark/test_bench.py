"""The benchmark's own correctness: its variants compute the same thing, and its
measurements see the whole process tree. (Speed itself is only measured by `make bench`.)"""

from __future__ import annotations

import glob
import importlib
import sys

import pytest

from bench import article, bare, run_bench
from pipeline.io.sources import sample_data
from tests.helpers.pipeline_runs import IN_PROCESS, run_pipeline


def test_bare_article_and_ours_predict_the_same(tmp_path):
    data = tmp_path / "shops.parquet"
    sample_data.write(sample_data.generate(3, years=4, seed=7, messy=False), str(data))
    (tmp_path / "bare").mkdir()
    bare.predict_all(bare.load(str(data)), "gbr", workers=1).to_parquet(
        tmp_path / "bare" / "predictions.parquet", index=False)
    article.run(str(data), str(tmp_path / "article" / "predictions"), "gbr", IN_PROCESS)
    run_pipeline(tmp_path / "ours", f"--input={data}", "--model=gbr", "--seed=0")

    frames = {v: run_bench.read_predictions(v, str(tmp_path / v)) for v in ("bare", "article", "ours")}
    # 3 shops x 4 years: windows 2013 and 2014 test 2015 and 2016, every day of both years.
    assert len(frames["bare"]) == 3 * (365 + 366)
    assert set(frames["ours"]["shop_id"]) == {"S000", "S001", "S002"}
    verdict = run_bench.compare_predictions(frames)
    assert verdict.startswith("yes"), verdict


def test_compare_predictions_catches_a_difference(tmp_path):
    data = tmp_path / "shops.parquet"
    sample_data.write(sample_data.generate(2, years=3, seed=1, messy=False), str(data))
    predictions = bare.predict_all(bare.load(str(data)), "ridge", workers=1)[["shop_id", "date", "predicted"]]
    changed = predictions.copy()
    changed.loc[5, "predicted"] += 0.01
    assert run_bench.compare_predictions({"bare": predictions, "ours": predictions}).startswith("yes")
    assert run_bench.compare_predictions({"bare": predictions, "ours": changed}).startswith("NO")
    assert run_bench.compare_predictions({"bare": predictions, "ours": predictions.iloc[1:]}).startswith("NO")


def test_measure_sees_grandchildren_cpu_and_memory(tmp_path):
    # The child starts a grandchild that holds ~300 MiB and burns CPU, as Beam's workers do.
    grandchild = ("import time; block = bytearray(300 * 2**20); block[::4096] = b'x' * len(block[::4096]); "
                  "end = time.process_time() + 0.6\nwhile time.process_time() < end: pass")
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}], check=True)"
    result = run_bench.measure([sys.executable, "-c", child], str(tmp_path / "log.txt"), timeout=120)
    assert result.returncode == 0
    assert result.cpu >= 0.5
    assert result.peak_rss >= 300 * 2**20


# A command line element that measure() takes for a worker, as it takes Beam's SDK workers.
WORKER_TAG = "apache_beam.runners.worker.sdk_worker_main"


def hold(mib: int, seconds: float) -> str:
    """Python code that touches `mib` MiB and keeps them for `seconds`."""
    return (f"import time; block = bytearray({mib} * 2**20); block[::4096] = b'x' * len(block[::4096]); "
            f"time.sleep({seconds})")


def test_measure_keeps_the_peak_per_process_and_per_role(tmp_path):
    # The launcher holds 100 MiB and starts two workers holding 300 and 150 MiB at the same time:
    # the sum sees all three, the largest process only the 300 MiB worker, each role its own largest.
    workers = [[sys.executable, "-c", hold(300, 1.5), WORKER_TAG], [sys.executable, "-c", hold(150, 1.5), WORKER_TAG]]
    launcher = (f"{hold(100, 0)}\nimport subprocess\n"
                f"running = [subprocess.Popen(argv) for argv in {workers!r}]\n"
                "assert all(p.wait() == 0 for p in running)")
    result = run_bench.measure([sys.executable, "-c", launcher], str(tmp_path / "log.txt"), timeout=120)
    assert result.returncode == 0, (tmp_path / "log.txt").read_text()
    worker, main = result.peak_by_role["worker"], result.peak_by_role["launcher"]
    assert 300 * 2**20 <= worker < 420 * 2**20  # one worker, not both
    assert 100 * 2**20 <= main < 250 * 2**20
    assert result.peak_process == worker
    assert result.peak_rss >= (300 + 150 + 100) * 2**20
    assert "jvm" not in result.peak_by_role


def test_roles_come_from_command_line_elements():
    assert run_bench.role_of(["/venv/bin/python", "-m", "apache_beam.runners.worker.sdk_worker_main"]) == "worker"
    assert run_bench.role_of(["python", "-m", "joblib.externals.loky.backend.popen_loky_posix", "--pipe", "9"]) == "worker"
    assert run_bench.role_of(["/venv/bin/python", "-m", "pyspark.daemon", "pyspark.worker"]) == "worker"
    assert run_bench.role_of(["/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "-cp", "x", "SparkSubmit"]) == "jvm"
    # The fork server and the workers it forks share its command line; its clients are neither.
    assert run_bench.role_of(["/venv/bin/python", "-m", "pipeline.utils.fork_server", "serve", "/tmp/f/socket"]) == "worker"
    assert run_bench.role_of(["/venv/bin/python", "-m", "pipeline.utils.fork_server", "client", "/tmp/f/socket"]) is None
    # Beam's `sh -c "python -m ...sdk_worker_main"` wrapper is not a worker, nor is a resource tracker.
    assert run_bench.role_of(["/bin/sh", "-c", "python -m apache_beam.runners.worker.sdk_worker_main"]) is None
    assert run_bench.role_of(["python", "-c", "from joblib.externals.loky.backend.resource_tracker import main"]) is None


def test_measure_counts_the_cpu_of_orphaned_descendants(tmp_path):
    # The child starts a grandchild and exits without waiting: the grandchild, reparented to the
    # measuring process (its subreaper), still counts; wall stops when the child exits.
    burn = "import time\nend = time.process_time() + 0.8\nwhile time.process_time() < end: pass"
    child = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {burn!r}])"
    result = run_bench.measure([sys.executable, "-c", child], str(tmp_path / "log.txt"), timeout=120)
    assert result.returncode == 0
    assert result.cpu >= 0.8


def test_measure_counts_the_cpu_of_children_reaped_by_the_kernel(tmp_path):
    # Spark's Python daemon ignores SIGCHLD: the kernel reaps the workers it forks, and their CPU time
    # reaches no wait4. measure() samples it instead.
    child = ("import os, signal, time\nsignal.signal(signal.SIGCHLD, signal.SIG_IGN)\npid = os.fork()\n"
             "if pid == 0:\n    end = time.process_time() + 1.0\n    while time.process_time() < end: pass\n"
             "    os._exit(0)\n"
             "while True:\n    try:\n        os.kill(pid, 0)\n    except ProcessLookupError:\n        break\n"
             "    time.sleep(0.02)")
    result = run_bench.measure([sys.executable, "-c", child], str(tmp_path / "log.txt"), timeout=120)
    assert result.returncode == 0, (tmp_path / "log.txt").read_text()
    assert result.cpu_sampled >= 0.9
    assert result.cpu >= 0.9


def test_measure_kills_leftovers_after_the_grace_period(tmp_path):
    # An orphan that never ends is killed once the grace period is over, and measure() returns.
    child = ("import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']).pid)")
    before = {p.pid for p in run_bench.psutil.Process().children()}
    result = run_bench.measure([sys.executable, "-c", child], str(tmp_path / "log.txt"), timeout=120, grace=1.0)
    assert result.returncode == 0
    orphan = int((tmp_path / "log.txt").read_text().split()[-1])
    assert not run_bench.psutil.pid_exists(orphan)  # killed and reaped
    assert {p.pid for p in run_bench.psutil.Process().children()} == before


def test_spark_udf_predicts_what_the_bare_loop_predicts(tmp_path):
    # bench.spark_pandas.fit_key_windows is the body Spark's applyInPandas runs per key; here it gets
    # each shop's rows as Spark hands them (the Parquet's own types: dates as dates, attr3 as text).
    from bench import spark_pandas

    data = tmp_path / "shops.parquet"
    sample_data.write(sample_data.generate(3, years=4, seed=7, messy=False), str(data))
    rows = run_bench.pd.read_parquet(data)
    first, last = int(rows["year"].min()), int(rows["year"].max())
    fit = spark_pandas.per_key("ridge", first, last, 0)
    parts = [fit(group.reset_index(drop=True)) for _, group in rows.groupby("shop_id")]
    assert all(list(part.columns) == spark_pandas.OUTPUT_COLUMNS for part in parts)
    # Spark writes part files under <out>/predictions/: read back as the benchmark reads them.
    (tmp_path / "spark" / "predictions").mkdir(parents=True)
    for number, part in enumerate(parts):
        part.to_parquet(tmp_path / "spark" / "predictions" / f"part-{number:05d}-x.snappy.parquet", index=False)
    (tmp_path / "spark" / "predictions" / "_SUCCESS").write_text("")
    (tmp_path / "bare").mkdir()
    bare.predict_all(bare.load(str(data)), "ridge", workers=1).to_parquet(
        tmp_path / "bare" / "predictions.parquet", index=False)

    frames = {v: run_bench.read_predictions(v, str(tmp_path / v)) for v in ("bare", "spark")}
    assert len(frames["spark"]) == 3 * (365 + 366)
    verdict = run_bench.compare_predictions(frames)
    assert verdict.startswith("yes"), verdict
    # A key whose rows cover too few periods has no window: an empty frame with the schema's columns.
    short = rows[(rows["shop_id"] == "S000") & (rows["year"] <= first + 1)].reset_index(drop=True)
    assert fit(short).empty and list(fit(short).columns) == spark_pandas.OUTPUT_COLUMNS
    assert [c.split()[0] for c in spark_pandas.SCHEMA.split(", ")] == spark_pandas.OUTPUT_COLUMNS


def test_spark_udf_needs_no_pyspark(tmp_path, monkeypatch):
    # The main environment has no pyspark: the UDF module imports without it, and the benchmark's
    # command for the variant runs it with the Spark venv's interpreter.
    monkeypatch.setattr(run_bench, "DATA_DIR", str(tmp_path / "data"))
    importlib.import_module("bench.spark_pandas")
    argv = run_bench.command("spark", 3, "ridge", 2)
    assert argv[0] == run_bench.SPARK_PYTHON and argv[1:3] == ["-m", "bench.spark_pandas"]


def test_a_missing_spark_venv_is_said_and_the_variant_left_out(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_bench, "DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(run_bench, "RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(run_bench, "SPARK_PYTHON", str(tmp_path / "no-venv" / "bin" / "python"))
    assert run_bench.main(["--cases=2:ridge", "--variants=bare,ours,spark", "--repeats=1", "--workers=1"]) == 0

    captured = capsys.readouterr()
    assert "spark variant NOT RUN" in captured.err and "make bench-spark-env" in captured.err
    header, row = [line for line in captured.out.splitlines() if line.startswith("| ")][:2]
    cells = dict(zip([c.strip() for c in header.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")]))
    assert cells["shops"] == "2" and cells["spark wall"] == "not run" and cells["ours/spark wall"] == "not run"
    assert cells["predictions agree"].startswith("yes (2922 rows")  # 2 shops x 4 test years
    assert float(cells["ours worker peak"]) > 50  # Beam's SDK worker process, a Python interpreter with Beam
    assert not glob.glob(str(tmp_path / "data" / "out" / "spark_*"))


def test_scaling_mode_reports_wall_per_shop_and_memory_per_process(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_bench, "DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(run_bench, "RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(run_bench, "SPARK_PYTHON", str(tmp_path / "no-venv" / "bin" / "python"))
    assert run_bench.main(["--scaling=3,2", "--variants=bare,ours", "--repeats=1", "--workers=1"]) == 0

    table = capsys.readouterr().out
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, [c.strip() for c in line.strip("|").split("|")])) for line in lines[1:]]
    assert [(r["shops"], r["variant"]) for r in rows] == [("2", "bare"), ("2", "ours"), ("3", "bare"), ("3", "ours")]
    for r in rows:
        wall, per_shop = float(r["wall s"]), float(r["ms / shop"])
        assert abs(per_shop - 1000 * wall / int(r["shops"])) <= 1000 * 0.05 / int(r["shops"]) + 0.05
        assert float(r["largest process MiB"]) <= float(r["memory sum MiB"])
        assert float(r["launcher MiB"]) <= float(r["largest process MiB"])
    ours = [r for r in rows if r["variant"] == "ours"]
    assert all(float(r["largest worker MiB"]) > 50 and r["JVM MiB"] == "n/a" for r in ours)
    assert rows[0]["predictions agree"].startswith("yes (2922 rows") and rows[2]["predictions agree"].startswith("yes (4383 rows")
    (written,) = glob.glob(str(tmp_path / "results" / "*-scaling.md"))
    assert open(written).read() == table.rstrip("\n") + "\n"
    with pytest.raises(SystemExit):
        run_bench.main(["--scaling=0"])
