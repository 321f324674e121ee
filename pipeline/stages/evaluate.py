"""Evaluation of one key x window: error metrics and a naive baseline to beat."""

from __future__ import annotations

import math

import numpy as np


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict:
    """RMSE, MAE, MAPE (over non-zero actuals only, None when all are zero) and bias (mean of
    predicted - actual)."""
    error = np.asarray(predicted, dtype=float) - np.asarray(actual, dtype=float)
    nonzero = actual != 0
    return {
        "rmse": float(math.sqrt(np.mean(error ** 2))) if len(error) else None,
        "mae": float(np.mean(np.abs(error))) if len(error) else None,
        "mape": float(np.mean(np.abs(error[nonzero] / actual[nonzero]))) if nonzero.any() else None,
        "bias": float(np.mean(error)) if len(error) else None,
    }


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float | None:
    return regression_metrics(actual, predicted)["rmse"]


def seasonal_dates(dates: np.ndarray, periods: np.ndarray, test_dates: np.ndarray, test_periods: np.ndarray,
                   source_period: int) -> np.ndarray:
    """For each test (date, period), the date at the same place in `source_period`; NaT where there is none.

    When periods are calendar years (the article's case) that is the same calendar day
    `period - source_period` years before. Otherwise the same offset from the start of the
    source period, where a period starts at its first date in the data. `dates` and `periods`
    cover the whole window (each period's dates sorted).
    """
    all_dates, all_periods = np.concatenate([dates, test_dates]), np.concatenate([periods, test_periods])
    years = all_dates.astype("datetime64[Y]").astype(np.int64) + 1970
    if (years == all_periods).all():
        return years_earlier(test_dates, test_periods - source_period)
    known, first_index = np.unique(all_periods, return_index=True)  # each period sorted: first = earliest
    first_date = all_dates[first_index]
    offset = test_dates - first_date[np.searchsorted(known, test_periods)]
    source = min(int(np.searchsorted(known, source_period)), len(known) - 1)
    if known[source] != source_period:
        return np.full(len(test_dates), np.datetime64("NaT"), dtype="datetime64[ns]")
    return first_date[source] + offset


def one_year_earlier(dates: np.ndarray) -> np.ndarray:
    """`dates - pandas.DateOffset(years=1)` in numpy (see years_earlier)."""
    return years_earlier(dates, 1)


def years_earlier(dates: np.ndarray, years) -> np.ndarray:
    """`dates - pandas.DateOffset(years=n)` in numpy, `years` a number or one per date: the same month,
    day and time n years earlier, the day clipped to the month's last (29 February -> 28 February)."""
    dates = np.asarray(dates, dtype="datetime64[ns]")
    month = dates.astype("datetime64[M]")
    day = dates.astype("datetime64[D]")
    time_of_day = dates - day
    day_index = day - month.astype("datetime64[D]")
    earlier = month - (12 * np.asarray(years, dtype=np.int64)).astype("timedelta64[M]")
    month_length = (earlier + np.timedelta64(1, "M")).astype("datetime64[D]") - earlier.astype("datetime64[D]")
    shifted = earlier.astype("datetime64[D]") + np.minimum(day_index, month_length - np.timedelta64(1, "D"))
    return (shifted + time_of_day).astype("datetime64[ns]")


def naive_baseline(train_dates: np.ndarray, train_periods: np.ndarray, train_values: np.ndarray,
                   test_dates: np.ndarray, test_periods: np.ndarray) -> np.ndarray:
    """Seasonal naive from the last training period: for each test row, the training value on the same
    date of the last training period (calendar years: the same day as many years before), or the
    training mean where that date has no value. One value per test row.

    Only training rows are passed, so with several test periods a later one never reads the actuals
    of an earlier one (which the model never saw). Arrays sorted by date.
    """
    if not len(train_values):
        return np.full(len(test_dates), np.nan)
    source = seasonal_dates(train_dates, train_periods, test_dates, test_periods, int(train_periods.max()))
    source = source.astype(train_dates.dtype)
    position = np.searchsorted(train_dates, source).clip(max=len(train_dates) - 1)
    found = train_dates[position] == source  # NaT never equals
    baseline = np.where(found, train_values[position], np.nan)
    return np.where(np.isnan(baseline), float(np.mean(train_values)), baseline)
