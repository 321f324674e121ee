"""The pattern most teams pick instead of a pipeline: Spark's "many models", one pandas UDF per key.

    df.groupBy("shop_id").applyInPandas(fit_key_windows, schema)

on `local[--workers]`: Spark reads the same Parquet, hands each shop's rows to a Python worker as
one pandas DataFrame (Arrow), and the UDF fits every window of that shop with the bare loop's code
(`bench.bare.fit_key`: same windows, same estimator, same per-group seed, same coercion), so its
predictions must match the bare loop's. The predictions are written as Parquet under
`<output>/predictions/`.

The UDF body (`fit_key_windows`) is plain pandas and imports no pyspark: the tests run it in the main
environment. Spark itself runs in its own venv, bench/.venv-spark (`make bench-spark-env`; pyspark's
Arrow path needs pandas 2.x), on the machine's Java 17:

    bench/.venv-spark/bin/python -m bench.spark_pandas --input data.parquet --output out --model ridge --workers 2

Settings (`session`): Arrow on; `spark.local.dir` (shuffle and spill files) and the JVM's temporary
directory under `<output>/spark-tmp` (deleted at the end); the driver (which is also the executor in
local mode) gets `--driver_memory` (default 2g: the input of 2,000 shops is 4.4 M rows, 28 MB of
Parquet; the shuffle spills to disk beyond that); no web UI; the driver, its block manager and the Python workers bind to
127.0.0.1 only. BLAS and OpenMP get one thread per Python worker (OMP_NUM_THREADS etc.), as
joblib's workers and the pipeline's fits have. Everything else is Spark's default (200 shuffle
partitions, coalesced by adaptive query execution; Python workers reused).

At the end the JVM is stopped and waited for, so that its CPU time (and that of the Python workers
it reaped) reaches the benchmark's `os.wait4` of this process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

import pandas as pd

from bench import bare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY, PERIOD, DATE, TARGET, FEATURES = bare.KEY, bare.PERIOD, bare.DATE, bare.TARGET, bare.FEATURES
OUTPUT_COLUMNS = [KEY, DATE, "window_start", "predicted", "actual"]
SCHEMA = f"{KEY} string, {DATE} date, window_start long, predicted double, actual double"
ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def fit_key_windows(rows: pd.DataFrame, model: str, first: int, last: int, seed: int = 0) -> pd.DataFrame:
    """One key's rows (all of them, as Spark's grouped map hands them) -> the predictions of every
    planned window of that key, in SCHEMA's columns (dates as `datetime.date`, Spark's DateType)."""
    if rows.empty:
        return pd.DataFrame({column: [] for column in OUTPUT_COLUMNS})
    rows = bare.coerce(rows[[KEY, PERIOD, DATE, TARGET, *FEATURES]].copy())
    predictions = bare.fit_key(str(rows[KEY].iloc[0]), rows, model, first, last, seed)
    if predictions is None:
        return pd.DataFrame({column: [] for column in OUTPUT_COLUMNS})
    predictions[DATE] = pd.to_datetime(predictions[DATE]).dt.date
    predictions["window_start"] = predictions["window_start"].astype("int64")
    return predictions[OUTPUT_COLUMNS]


def per_key(model: str, first: int, last: int, seed: int):
    """The function given to applyInPandas (one argument: the key's rows)."""

    def fit(rows: pd.DataFrame) -> pd.DataFrame:
        return fit_key_windows(rows, model, first, last, seed)

    return fit


def java_home() -> str | None:
    """JAVA_HOME as set, else the installation of the `java` on PATH (Java 17 on this machine)."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    return os.path.dirname(os.path.dirname(os.path.realpath(java))) if java else None


def prepare_environment(tmp_dir: str) -> None:
    """What the JVM and the Python workers it starts inherit: loopback only, this interpreter (the
    Spark venv's) for the workers, this checkout on their path, one BLAS/OpenMP thread each."""
    home = java_home()
    if home:
        os.environ["JAVA_HOME"] = home
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    os.environ["TMPDIR"] = tmp_dir
    for name in ONE_THREAD:
        os.environ.setdefault(name, "1")


def session(workers: int, driver_memory: str, tmp_dir: str):
    from pyspark.sql import SparkSession

    return (SparkSession.builder
            .master(f"local[{workers}]")
            .appName("bench-many-models")
            .config("spark.driver.memory", driver_memory)
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.local.dir", tmp_dir)
            .config("spark.driver.extraJavaOptions", f"-Djava.io.tmpdir={tmp_dir}")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate())


def stop(spark) -> None:
    """Stops Spark and waits for its JVM to exit (it exits when its stdin, our pipe, closes), so that
    this process reaps it and the JVM's CPU time counts in this process's children."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    spark.stop()
    process = getattr(gateway, "proc", None)
    if gateway is not None:
        gateway.shutdown()
    if process is not None:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(input_path: str, output: str, model: str, workers: int, driver_memory: str, seed: int = 0) -> None:
    """Reads, fits every key x window through applyInPandas, writes <output>/predictions/."""
    from pyspark.sql import functions as F

    tmp_dir = os.path.join(output, "spark-tmp")
    os.makedirs(tmp_dir, exist_ok=True)
    prepare_environment(tmp_dir)
    started = time.perf_counter()
    spark = session(workers, driver_memory, tmp_dir)
    print(f"spark {spark.version} on Java at {os.environ.get('JAVA_HOME')}, local[{workers}], driver memory "
          f"{driver_memory}: session in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    try:
        data = spark.read.parquet(input_path).select(KEY, PERIOD, DATE, TARGET, *FEATURES)
        first, last = data.agg(F.min(PERIOD), F.max(PERIOD)).first()
        predictions = data.groupBy(KEY).applyInPandas(per_key(model, int(first), int(last), seed), SCHEMA)
        predictions.write.mode("overwrite").parquet(os.path.join(output, "predictions"))
    finally:
        stop(spark)
        shutil.rmtree(tmp_dir, ignore_errors=True)
    print(f"done in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def main(argv=None) -> None:
    from pipeline.models import registry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True, help="folder: predictions go to <output>/predictions/")
    parser.add_argument("--model", default="gbr", choices=sorted(registry.REGISTRY))
    parser.add_argument("--workers", type=int, default=2, help="local[N]: N task slots, one Python worker each")
    parser.add_argument("--driver_memory", default="2g")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # The UDF must be pickled by reference to this module, not to __main__ (python -m bench.spark_pandas).
    from bench import spark_pandas

    spark_pandas.run(args.input, args.output, args.model, args.workers, args.driver_memory, args.seed)


if __name__ == "__main__":
    main()
