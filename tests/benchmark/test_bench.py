"""The benchmark's own correctness: its three variants compute the same thing, and its
measurements see the whole process tree. (Speed itself is only measured by `make bench`.)"""

from __future__ import annotations

import sys

from bench import article, bare, run_bench
from pipeline.io import sample_data
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
