"""Evaluation of one key x window: error metrics and a naive baseline to beat."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


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


def previous_period_dates(dates: pd.Series, periods: pd.Series, window_data: pd.DataFrame,
                          date_column: str, time_column: str) -> pd.Series:
    """The date one period earlier for each (date, period).

    When periods are calendar years (the article's case) that is the same
    calendar day a year before. Otherwise the same offset from the start of
    the previous period, where a period starts at its first date in the data.
    """
    all_dates, all_periods = window_data[date_column], window_data[time_column]
    if (all_dates.dt.year == all_periods).all():
        return dates - pd.DateOffset(years=1)
    first_date = all_dates.groupby(all_periods).min()
    offset = dates - periods.map(first_date)
    return (periods - 1).map(first_date) + offset


def naive_baseline(window_data: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame,
                   date_column: str, time_column: str, target: str) -> np.ndarray:
    """The same date one period earlier, or the training mean where that date has no value."""
    earlier = previous_period_dates(test[date_column], test[time_column], window_data, date_column,
                                    time_column)
    history = window_data.set_index(date_column)[target]
    baseline = earlier.map(history).to_numpy(dtype=float)
    return np.where(np.isnan(baseline), float(train[target].mean()), baseline)
