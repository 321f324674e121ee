"""The benchmark's Spark variant for real: Spark's applyInPandas in bench/.venv-spark on a tiny dataset.

Spark is no dependency of the project (`make test` and CI have no pyspark): this module is marked
`spark`, which `make test` deselects; `make bench-spark-test` builds the venv and runs it. The UDF
itself is checked without Spark in test_bench.py."""

from __future__ import annotations

import os

import pytest

from bench import run_bench

pytestmark = pytest.mark.spark


def test_spark_variant_predicts_like_bare_and_its_jvm_and_workers_are_measured(tmp_path, monkeypatch):
    assert os.access(run_bench.SPARK_PYTHON, os.X_OK), "bench/.venv-spark is missing: make bench-spark-env"
    monkeypatch.setattr(run_bench, "DATA_DIR", str(tmp_path / "data"))
    results = {}
    for variant in ("bare", "spark"):
        out = run_bench.output_dir(variant, 3, "ridge")
        os.makedirs(out)
        results[variant] = run_bench.measure(run_bench.command(variant, 3, "ridge", 2), os.path.join(out, "log.txt"),
                                             timeout=600)
        assert results[variant].returncode == 0, open(os.path.join(out, "log.txt")).read()[-3000:]

    verdict = run_bench.compare_predictions(
        {v: run_bench.read_predictions(v, run_bench.output_dir(v, 3, "ridge")) for v in ("bare", "spark")})
    assert verdict.startswith("yes (4383 rows"), verdict  # 3 shops x 2015..2018, every day
    spark = results["spark"]
    roles = spark.peak_by_role
    # The JVM is a descendant of the measured process: in the per-process peaks and in the sum.
    assert roles["jvm"] >= 150 * 2**20 and spark.peak_process == roles["jvm"]
    assert spark.peak_rss >= roles["jvm"] + 50 * 2**20
    # The Python workers (forked by pyspark's daemon, which ignores SIGCHLD): seen, and their CPU sampled.
    assert roles["worker"] >= 50 * 2**20
    assert spark.cpu_sampled > 0.1
    assert spark.cpu > spark.cpu_sampled
    # The temporary directory under the output folder is gone; the part files are there.
    out = run_bench.output_dir("spark", 3, "ridge")
    assert not os.path.exists(os.path.join(out, "spark-tmp"))
    assert os.path.exists(os.path.join(out, "predictions", "_SUCCESS"))
