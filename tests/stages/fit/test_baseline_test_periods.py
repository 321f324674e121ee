"""The naive baseline with several test periods (--test_periods > 1) reads training values only:
seasonal naive from the last training period, never the actuals of an earlier test period."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.stages.fit import evaluate
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline


def test_every_test_period_reads_the_last_training_period():
    dates = np.array(["2015-03-01", "2015-03-02", "2016-03-01", "2016-03-02",
                      "2017-03-01", "2017-03-02", "2018-03-01", "2018-03-02"], dtype="datetime64[ns]")
    periods = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    values = np.array([1.0, 2.0, 3.0, 4.0, 50.0, 60.0, 700.0, 800.0])
    is_test = periods >= 2017
    baseline = evaluate.naive_baseline(dates[~is_test], periods[~is_test], values[~is_test],
                                       dates[is_test], periods[is_test])
    # 2017 and 2018 both read 2016 (the last training year), never 2017's 50 and 60.
    np.testing.assert_array_equal(baseline, [3.0, 4.0, 3.0, 4.0])


def test_integer_periods_use_the_same_offset_in_the_last_training_period():
    dates = np.array(["2020-01-01", "2020-01-02", "2020-01-11", "2020-01-12", "2020-01-21", "2020-01-22"],
                     dtype="datetime64[ns]")
    periods = np.array([1, 1, 2, 2, 3, 3])
    values = np.array([1.0, 2.0, 30.0, 40.0, 500.0, 600.0])
    is_test = periods >= 2
    baseline = evaluate.naive_baseline(dates[~is_test], periods[~is_test], values[~is_test],
                                       dates[is_test], periods[is_test])
    np.testing.assert_array_equal(baseline, [1.0, 2.0, 1.0, 2.0])


def test_pipeline_baseline_of_the_second_test_period_ignores_the_first(tmp_path):
    """End to end: --window_size=4 --test_periods=2. Each test year's baseline is the value of the same
    day in the last training year, and baseline_rmse is computed from exactly those values."""
    data = make_rows({"A": [2001, 2002, 2003, 2004, 2005], "B": [2001, 2002, 2003, 2004, 2005]}, days=8)
    data["sales"] += 100.0 * (data["year"] - 2000)  # each year on its own level: a wrong year shows
    path = tmp_path / "input.parquet"
    data.to_parquet(path, index=False)
    run_pipeline(tmp_path / "out", f"--input={path}", "--model=ridge", "--window_size=4", "--test_periods=2")
    predictions = read_output(str(tmp_path / "out"), "predictions")
    metrics = read_output(str(tmp_path / "out"), "metrics")
    assert set(predictions["window_start"]) == {2001, 2002}

    actual = data.assign(date=pd.to_datetime(data["date"])).set_index(["shop_id", "date"])["sales"]
    predictions = predictions.assign(date=pd.to_datetime(predictions["date"]))
    last_train_year = predictions["window_start"] + 1
    source = [d.replace(year=int(y)) for d, y in zip(predictions["date"], last_train_year)]
    expected = actual.loc[list(zip(predictions["shop_id"], source))].to_numpy()
    np.testing.assert_array_equal(predictions["baseline"].to_numpy(), expected)
    assert set(predictions["year"] - predictions["window_start"]) == {2, 3}  # both test years checked

    for (key, start), group in predictions.groupby(["shop_id", "window_start"]):
        row = metrics[(metrics["shop_id"] == key) & (metrics["window_start"] == start)].iloc[0]
        assert row["baseline_rmse"] == evaluate.rmse(group["actual"].to_numpy(), group["baseline"].to_numpy())
