"""The naive baseline on hand-made windows: same date one period earlier, else the training mean."""

import datetime

import numpy as np
import pytest
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.stages.fit import evaluate


def _dates(*texts):
    return np.array(texts, dtype="datetime64[ns]")


def naive_baseline(dates, periods, values, is_test):
    """The window's arrays cut as the training step cuts them: only training values are passed."""
    return evaluate.naive_baseline(dates[~is_test], periods[~is_test], values[~is_test], dates[is_test],
                                   periods[is_test])


def test_calendar_years_use_the_same_day_a_year_before():
    dates = _dates("2015-02-28", "2015-03-01", "2016-02-29", "2016-03-01", "2016-03-02")
    periods = np.array([2015, 2015, 2016, 2016, 2016])
    values = np.array([10.0, 20.0, 1.0, 2.0, 3.0])
    is_test = periods == 2016
    # 29 Feb 2016 -> 28 Feb 2015; 1 Mar -> 1 Mar; 2 Mar 2015 is missing -> training mean 15.
    np.testing.assert_array_equal(naive_baseline(dates, periods, values, is_test), [10.0, 20.0, 15.0])


def test_other_periods_use_the_same_offset_from_the_last_training_period_start():
    # Periods of 10 days; period 1 (training) starts on 1 Jan, period 2 on 11 Jan, period 4 on 1 Feb.
    dates = _dates("2020-01-01", "2020-01-03", "2020-01-11", "2020-01-13", "2020-01-14", "2020-02-01")
    periods = np.array([1, 1, 2, 2, 2, 4])
    values = np.array([5.0, 7.0, 50.0, 70.0, 80.0, 99.0])
    is_test = periods >= 2
    baseline = naive_baseline(dates, periods, values, is_test)
    # 11 Jan (offset 0) -> 1 Jan = 5; 13 Jan (offset 2) -> 3 Jan = 7; 14 Jan -> 4 Jan missing -> mean 6;
    # 1 Feb (offset 0 in period 4) -> 1 Jan of period 1, the last training period = 5.
    np.testing.assert_array_equal(baseline, [5.0, 7.0, 6.0, 5.0])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.datetimes(min_value=datetime.datetime(1901, 1, 1), max_value=datetime.datetime(2199, 12, 31)),
                min_size=1, max_size=20))
def test_one_year_earlier_is_pandas_date_offset(values):
    dates = np.array(values, dtype="datetime64[ns]")
    expected = (pd.DatetimeIndex(dates) - pd.DateOffset(years=1)).to_numpy()
    np.testing.assert_array_equal(evaluate.one_year_earlier(dates), expected)


def test_mase_smape_wape_by_hand():
    actual, predicted = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 2.0, 2.0])
    # |e| = 1, 0, 1, 2: MAE 1; in-sample seasonal naive (m = 1) of 1, 3, 1, 3, 1, 3 errs by 2 each time
    scale = evaluate.seasonal_scale(np.arange(6), np.array([1.0, 3, 1, 3, 1, 3]), 1)
    assert scale == 2.0
    got = evaluate.scaled_metrics(actual, predicted, scale)
    assert got["mase"] == 0.5
    assert got["smape"] == pytest.approx((200 / 3 + 0 + 200 / 5 + 200 * 2 / 6) / 4)
    assert got["wape"] == pytest.approx(4 / 10)
    assert evaluate.seasonal_scale(np.arange(6), np.array([1.0, 3, 1, 3, 1, 3]), 2) == 0.0
    assert evaluate.scaled_metrics(actual, predicted, 0.0)["mase"] is None  # no scale, no MASE
    zeros = evaluate.scaled_metrics(np.array([0.0, 0.0]), np.array([0.0, 1.0]), 1.0)
    assert zeros["smape"] == 100.0 and zeros["wape"] is None  # 0/0 term is 0; sum |y| = 0


def test_seasonal_scale_skips_missing_steps_and_seasonal_naive_reaches_back_whole_seasons():
    # step 3 missing: the pair (4, 3) does not exist; pairs (1, 0) and (2, 1) err by 1 and 2
    assert evaluate.seasonal_scale(np.array([0, 1, 2, 4]), np.array([1.0, 2, 4, 8]), 1) == 1.5
    steps, values = np.arange(8), np.arange(8.0)
    # season 4, last training step 7: step 8 <- 4, step 9 <- 5, step 13 (h = 6, two seasons back) <- 5
    got = evaluate.seasonal_naive(steps, values, np.array([8, 9, 13]), 4)
    assert got.tolist() == [4.0, 5.0, 5.0]
