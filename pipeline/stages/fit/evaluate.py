"""Evaluation of one key x window: error metrics, a naive baseline and a seasonal naive baseline to beat.

Scale-free metrics (the forecasting competitions' definitions):
- MASE: MAE over the in-sample MAE of seasonal naive on the window's training periods,
  mean |x_t - x_(t-m)| over the training rows whose value m steps earlier is a training row too
  (m = --season_length, or the key's frequency's cycle). 0 is perfect, 1 is as good in the test periods
  as seasonal naive was in-sample; None when the scale is 0 or has no pair.
- sMAPE (Makridakis, 0-200): mean of 200 |y - f| / (|y| + |f|), a term 0 where y = f = 0.
- WAPE: sum |y - f| / sum |y| (None when every actual is 0).
"""


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


def scaled_metrics(actual: np.ndarray, predicted: np.ndarray, scale: float | None) -> dict:
    """MASE (over `scale`, see `seasonal_scale`), sMAPE (0-200) and WAPE of one set of predictions."""
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    if not len(actual):
        return {"mase": None, "smape": None, "wape": None}
    absolute = np.abs(predicted - actual)
    return {
        "mase": float(absolute.mean() / scale) if scale else None,
        "smape": float(np.mean(smape_terms(actual, predicted))),
        "wape": float(absolute.sum() / np.abs(actual).sum()) if np.abs(actual).sum() else None,
    }


def smape_terms(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """200 |y - f| / (|y| + |f|) per row, 0 where both are 0."""
    denominator = np.abs(actual) + np.abs(predicted)
    return np.where(denominator > 0, 200 * np.abs(predicted - actual) / np.where(denominator > 0, denominator, 1), 0.0)


def _value_steps_earlier(steps: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The value at each `wanted` step of a history in step order; NaN where there is no row."""
    position = np.searchsorted(steps, wanted).clip(max=len(steps) - 1)
    return np.where(steps[position] == wanted, values[position], np.nan)


def seasonal_scale(train_steps: np.ndarray, train_values: np.ndarray, season: int) -> float | None:
    """MASE's denominator: the in-sample MAE of seasonal naive over the training rows (None without a pair)."""
    if len(train_steps) <= season:
        return None
    earlier = _value_steps_earlier(train_steps, train_values, train_steps - season)
    known = ~np.isnan(earlier)
    if not known.any():
        return None
    scale = float(np.abs(train_values[known] - earlier[known]).mean())
    # A season repeated exactly leaves rounding noise (sin(2 pi t / 12) is not exactly periodic in floats):
    # no scale then, rather than a MASE of noise over noise.
    return scale if scale > 1e-12 * float(np.abs(train_values).mean()) else 0.0


def seasonal_naive(train_steps: np.ndarray, train_values: np.ndarray, test_steps: np.ndarray,
                   season: int) -> np.ndarray:
    """Seasonal naive in steps: each test row gets the last training value of its season (step
    s - k*m, k the smallest whole number of seasons reaching back into the training rows), or the
    training mean where that step has no row. Only training values are read."""
    if not len(train_values):
        return np.full(len(test_steps), np.nan)
    seasons_back = -(-(test_steps - train_steps[-1]) // season)  # ceil(h / m)
    baseline = _value_steps_earlier(train_steps, train_values, test_steps - seasons_back * season)
    return np.where(np.isnan(baseline), float(np.mean(train_values)), baseline)
