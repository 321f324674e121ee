"""Periods and frequencies from dates (pipeline.utils.periods)."""

import numpy as np
import pandas as pd
import pytest

from pipeline.utils import periods


def _dates(*texts):
    return pd.to_datetime(list(texts)).to_numpy()


def test_ordinals_are_consecutive_integers_in_every_unit():
    dates = _dates("2020-12-31", "2021-01-01")
    assert periods.ordinals(dates, "year").tolist() == [2020, 2021]
    assert np.diff(periods.ordinals(dates, "quarter")).tolist() == [1]
    assert np.diff(periods.ordinals(dates, "month")).tolist() == [1]
    assert np.diff(periods.ordinals(dates, "day")).tolist() == [1]
    # Sunday 2021-01-03 and Monday 2021-01-04 are in consecutive ISO weeks.
    assert np.diff(periods.ordinals(_dates("2021-01-03", "2021-01-04"), "week")).tolist() == [1]
    assert np.diff(periods.ordinals(_dates("2021-01-04", "2021-01-10"), "week")).tolist() == [0]


@pytest.mark.parametrize("unit, text, expected", [
    ("year", "2021-06-30", "2021"), ("quarter", "2021-05-01", "2021-Q2"), ("quarter", "2021-12-31", "2021-Q4"),
    ("month", "2021-03-14", "2021-03"), ("day", "2021-03-14", "2021-03-14"),
    ("week", "2021-02-01", "2021-W05"), ("week", "2021-01-03", "2020-W53"), ("week", "1970-01-01", "1970-W01"),
])
def test_labels_read_as_people_write_periods(unit, text, expected):
    ordinal = periods.ordinals(_dates(text), unit)[0]
    assert periods.label(ordinal, unit) == expected
    assert periods.labels([ordinal, ordinal], unit).tolist() == [expected, expected]


def test_month_ordinal_is_the_hand_made_month_index():
    assert periods.ordinals(_dates("2021-03-01"), "month")[0] == 2021 * 12 + 2


def test_wide_dates_keep_their_day():
    wide = np.array(["9999-12-31"], dtype="datetime64[D]")
    assert periods.label(periods.ordinals(wide, "day")[0], "day") == "9999-12-31"
    assert periods.ordinals(wide, "year").tolist() == [9999]


@pytest.mark.parametrize("freq, frequency", [("D", "D"), ("W-MON", "W"), ("MS", "M"), ("ME", "M"),
                                              ("QS", "Q"), ("YS", "Y")])
def test_infer_frequency(freq, frequency):
    dates = pd.date_range("2019-01-01", periods=30, freq=freq).to_numpy()
    assert periods.infer_frequency(dates) == frequency


def test_infer_frequency_none_without_a_calendar_spacing():
    assert periods.infer_frequency(_dates("2021-01-01")) is None
    assert periods.infer_frequency(pd.date_range("2021-01-01", periods=10, freq="3D").to_numpy()) is None


def test_steps_are_calendar_aware():
    monthly = _dates("2020-03-01", "2021-02-01", "2021-03-01")
    steps = periods.steps(monthly, "M")
    assert (steps[2] - steps[0], steps[2] - steps[1]) == (12, 1)


def test_resolve_frequency_order():
    monthly = pd.date_range("2020-01-01", periods=6, freq="MS").to_numpy()
    assert periods.resolve_frequency("W", "", monthly) == "W"
    assert periods.resolve_frequency("", "", monthly) == "M"
    assert periods.resolve_frequency("", "quarter", monthly[:1]) == "Q"
    assert periods.resolve_frequency("", "", monthly[:1]) == "D"
