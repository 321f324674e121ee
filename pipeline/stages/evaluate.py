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


def previous_period_dates(dates: np.ndarray, periods: np.ndarray, test_dates: np.ndarray,
                          test_periods: np.ndarray) -> np.ndarray:
    """The date one period earlier for each test (date, period); NaT where there is none.

    When periods are calendar years (the article's case) that is the same
    calendar day a year before. Otherwise the same offset from the start of
    the previous period, where a period starts at its first date in the data.
    `dates` (of the whole window) must be sorted.
    """
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    if (years == periods).all():
        return one_year_earlier(test_dates)
    known, first_index = np.unique(periods, return_index=True)  # sorted dates: first = earliest
    first_date = dates[first_index]
    offset = test_dates - first_date[np.searchsorted(known, test_periods)]
    previous = np.searchsorted(known, test_periods - 1).clip(max=len(known) - 1)
    has_previous = known[previous] == test_periods - 1
    return np.where(has_previous, first_date[previous] + offset, np.datetime64("NaT"))


def one_year_earlier(dates: np.ndarray) -> np.ndarray:
    """`dates - pandas.DateOffset(years=1)` in numpy: the same month, day and time a year earlier,
    the day clipped to the month's last (29 February -> 28 February)."""
    dates = np.asarray(dates, dtype="datetime64[ns]")
    month = dates.astype("datetime64[M]")
    day = dates.astype("datetime64[D]")
    time_of_day = dates - day
    day_index = day - month.astype("datetime64[D]")
    earlier = month - np.timedelta64(12, "M")
    month_length = (earlier + np.timedelta64(1, "M")).astype("datetime64[D]") - earlier.astype("datetime64[D]")
    shifted = earlier.astype("datetime64[D]") + np.minimum(day_index, month_length - np.timedelta64(1, "D"))
    return (shifted + time_of_day).astype("datetime64[ns]")


def naive_baseline(dates: np.ndarray, periods: np.ndarray, values: np.ndarray, is_test: np.ndarray) -> np.ndarray:
    """The same date one period earlier, or the training mean where that date has no value.

    Arrays of one window sorted by date; returns one value per test row.
    """
    earlier = previous_period_dates(dates, periods, dates[is_test], periods[is_test]).astype(dates.dtype)
    position = np.searchsorted(dates, earlier).clip(max=len(dates) - 1)
    found = dates[position] == earlier  # NaT never equals
    baseline = np.where(found, values[position], np.nan)
    return np.where(np.isnan(baseline), float(values[~is_test].mean()), baseline)
