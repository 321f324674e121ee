"""Expanding windows, windows anchored at each key's own end, and windows derived from each key's own
periods (issue 21 §4, issue 23 §6)."""

import re
import tracemalloc

import numpy as np
import pandas as pd

from pipeline.stages.prepare.window_plan import WindowPlan
from pipeline.utils import periods
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline


def test_a_stray_far_period_costs_one_window_not_the_whole_range():
    """One row in year 3,000,000 among daily rows of 2001-2010: each key's windows come from its own
    periods; the key with the stray row gets one more window (holding that row only), not a list of
    three million starts (882 MB before)."""
    plan = WindowPlan(size=3, period=1, test_periods=1)
    ordinary = np.repeat(np.arange(2001, 2011), 365)
    stray = np.r_[ordinary, 3_000_000]
    tracemalloc.start()
    cuts = {name: list(plan.cut(values, 2001, 3_000_000)) for name, values in (("ordinary", ordinary),
                                                                                ("stray", stray))}
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000
    assert [start for start, _ in cuts["ordinary"]] == list(range(2001, 2011))
    assert [start for start, _ in cuts["stray"]] == list(range(2001, 2011)) + [2_999_998]
    assert cuts["stray"][-1][1] == slice(len(ordinary), len(stray))


def test_key_anchored_starts_end_at_the_key_and_count_the_missing_ones():
    plan = WindowPlan(size=24, period=6, test_periods=6, anchor="key", n_windows=3)
    assert plan.key_starts(np.arange(100, 160)) == ([124, 130, 136], [])  # the last ends at 159
    short = np.arange(100, 130)  # 30 periods: two windows of 24 fit, stepping back by 6
    assert plan.key_starts(short) == ([100, 106], [94])
    every = WindowPlan(size=24, period=6, test_periods=6, anchor="key")
    assert every.key_starts(np.arange(100, 160)) == ([100, 106, 112, 118, 124, 130, 136], [])
    assert every.key_starts(np.arange(100, 110)) == ([], [86])  # none fits: the key is not silently absent


def test_global_n_windows_keeps_the_last_windows_of_the_grid():
    assert WindowPlan(3, 1, 1, n_windows=2).global_starts(np.arange(2001, 2011), 2001, 2010) == [2007, 2008]
    assert WindowPlan(4, 2, 2, n_windows=1).global_starts(np.arange(2013, 2021), 2013, 2020) == [2016]
    assert WindowPlan(4, 2, 2).global_starts(np.arange(2013, 2021), 2013, 2020) == [2014, 2016]


def _monthly(spans: dict[str, tuple[str, int]], seed: int = 0) -> pd.DataFrame:
    """key -> (first month, months): monthly rows dated the 1st, target = 3 x feature + noise."""
    rng = np.random.default_rng(seed)
    frames = []
    for key, (first, count) in spans.items():
        x = rng.normal(size=count)
        frames.append(pd.DataFrame({"shop_id": key, "date": pd.date_range(first, periods=count, freq="MS").date,
                                    "sales": 10 + 3 * x + rng.normal(scale=0.1, size=count), "x": x}))
    return pd.concat(frames, ignore_index=True)


SPANS = {"short": ("2015-04-01", 30), "mid": ("2012-01-01", 75), "long": ("2008-06-01", 150),
         "retired": ("2010-01-01", 100)}
KEY_ARGS = ["--period=month", "--features=x", "--model=ridge", "--window_anchor=key", "--n_windows=3",
            "--window_size=24", "--window_period=6", "--test_periods=6"]


def test_key_anchored_windows_end_at_each_keys_last_period(tmp_path, write_parquet, capsys):
    """Series of 30 to 150 months ending at different dates: each key's last window ends at its own last
    observed month; the 30-month key fits two windows of 24 and its ledger says why the third is missing."""
    data = _monthly(SPANS)
    source = write_parquet(data)
    out = tmp_path / "out"
    summary = run_pipeline(out, f"--input={source}", *KEY_ARGS, "--interval_levels=80")
    ledger = read_output(str(out), "ledger")
    last = data.groupby("shop_id")["date"].max().map(lambda d: int(periods.ordinals(np.array([d], "datetime64[D]"),
                                                                                    "month")[0]))
    trained = ledger[ledger["status"] == "trained"]
    assert trained.groupby("shop_id")["window_end"].max().to_dict() == last.to_dict()
    assert trained.groupby("shop_id").size().to_dict() == {"short": 2, "mid": 3, "long": 3, "retired": 3}
    missing = ledger[ledger["reason"] == "too_short_history"]
    assert list(missing["shop_id"]) == ["short"] and missing["window_end"].iloc[0] == last["short"] - 12
    assert summary["skipped_by_reason"] == {"too_short_history": 1}
    predictions = read_output(str(out), "predictions")
    assert predictions.groupby("shop_id")["month"].max().to_dict() == last.to_dict()
    # intervals use the key's earlier windows: the last window of each key has a band
    final = predictions[predictions["window_end"] == predictions["shop_id"].map(last)]
    assert final["lower_80"].notna().all() and (final["lower_80"] <= final["upper_80"]).all()

    plan_out = tmp_path / "plan"
    document = run_pipeline(plan_out, f"--input={source}", *KEY_ARGS, "--plan_only")
    assert document["fits"] == 11 and document["would_skip_by_reason"] == {"too_short_history": 1}
    plan = read_output(str(plan_out), "plan")
    assert plan.loc[plan["shop_id"] == "long", "test_label"].max() == "2020-06..2020-11"
    printed = capsys.readouterr().out  # the plan table reads its periods as months
    assert re.search(r"2018-12\.\.2020-11\s+2018-12\.\.2020-05\s+2020-06\.\.2020-11", printed)
    assert re.search(r"short\s+2014-10\.\.2016-09\s+0\s+0\s+too_short_history", printed)


def test_expanding_windows_train_on_every_earlier_period(tmp_path, write_parquet):
    data = make_rows({"A": list(range(2001, 2007)), "B": [2001, 2002, 2003, 2005, 2006]})
    source = write_parquet(data)
    run_pipeline(tmp_path / "expanding", f"--input={source}", "--model=ridge", "--window_mode=expanding")
    run_pipeline(tmp_path / "sliding", f"--input={source}", "--model=ridge")
    expanding = read_output(str(tmp_path / "expanding"), "metrics").set_index(["shop_id", "window_start"])
    sliding = read_output(str(tmp_path / "sliding"), "metrics").set_index(["shop_id", "window_start"])
    assert list(expanding.index) == list(sliding.index)  # the same windows, the same tests
    a = expanding.loc["A"]
    assert a["rows_train"].to_dict() == {2001: 40, 2002: 60, 2003: 80, 2004: 100}  # 20 rows a year since 2001
    assert set(sliding["rows_train"]) == {40}
    assert list(expanding.loc["B"].index) == [2001]  # a window with a missing period is still skipped
    ledger = read_output(str(tmp_path / "expanding"), "ledger").set_index(["shop_id", "window_start"])
    assert ledger.loc[("B", 2004), "reason"] == "too_few_periods"  # 2005 and 2006 of 2004-2006, however long B is
    predictions = read_output(str(tmp_path / "expanding"), "predictions")
    assert (predictions["year"] == predictions["window_end"]).all()


def test_selection_intervals_and_forecasts_on_expanding_key_anchored_windows(tmp_path, write_parquet):
    """Two models side by side on expanding windows anchored at each key's end, with intervals and a
    forecast of the months after each key's last: every key gets a choice, a band and its forecasts,
    and the forecast trains on the key's whole history."""
    data = _monthly({"early": ("2014-01-01", 40), "late": ("2015-07-01", 60)})
    last = data.groupby("shop_id")["date"].max()
    future = pd.concat([pd.DataFrame({"shop_id": key, "date": pd.date_range(end, periods=4, freq="MS")[1:].date,
                                      "sales": np.nan, "x": 0.5}) for key, end in last.items()], ignore_index=True)
    out = tmp_path / "out"
    summary = run_pipeline(out, f"--input={write_parquet(pd.concat([data, future], ignore_index=True))}",
                           "--period=month", "--features=x", "--model=ridge,gbr", "--window_mode=expanding",
                           "--window_anchor=key", "--n_windows=3", "--window_size=12", "--window_period=3",
                           "--test_periods=3", "--interval_levels=80", "--forecast=true",
                           '--model_params={"gbr": {"n_estimators": 10}}')
    assert summary["groups_failed"] == 0
    metrics = read_output(str(out), "metrics")
    assert metrics.groupby(["shop_id", "model"]).size().to_dict() == {
        ("early", "gbr"): 3, ("early", "ridge"): 3, ("late", "gbr"): 3, ("late", "ridge"): 3}
    first = {"early": periods.ordinals(np.array(["2014-01-01"], "datetime64[D]"), "month")[0],
             "late": periods.ordinals(np.array(["2015-07-01"], "datetime64[D]"), "month")[0]}
    # expanding: each window trains on every month from the key's first up to its test start
    assert ((metrics["rows_train"]) == metrics["test_start"] - metrics["shop_id"].map(first)).all()
    selection = read_output(str(out), "selection")
    assert selection.groupby("shop_id")["chosen"].sum().to_dict() == {"early": 1, "late": 1}
    forecasts = read_output(str(out), "forecasts")
    assert forecasts.groupby("shop_id").size().to_dict() == {"early": 3, "late": 3}
    assert forecasts["lower_80"].notna().all()
    assert (forecasts["rows_train"] == forecasts["shop_id"].map({"early": 40, "late": 60})).all()
