"""Calendar periods and frequencies from dates: the one source of truth for the integer a date's period
is (the windows count in it), how people read it, and the spacing of a key's rows.

Units and their integers (ordinals):

    year      the calendar year                          2021       -> "2021"
    quarter   year * 4 + quarter - 1                     8085       -> "2021-Q2"
    month     year * 12 + month - 1                      24254      -> "2021-03"
    week      ISO weeks (Monday to Sunday) since the     2662       -> "2021-W05"
              week of 1970-01-01
    day       days since 1970-01-01                      18700      -> "2021-03-14"

Consecutive periods are consecutive integers in every unit, so windows, lags and horizons step by 1.
A week is labelled with its ISO year and number (the year of its Thursday: 2021-01-03 is in 2020-W53).
Frequencies are the spacing of a key's rows, D, W, M, Q or Y: one step of frequency F is one period of
the unit UNIT_OF_FREQUENCY[F].
"""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd

UNITS = ("year", "quarter", "month", "week", "day")
FREQUENCIES = ("D", "W", "M", "Q", "Y")
UNIT_OF_FREQUENCY = {"Y": "year", "Q": "quarter", "M": "month", "W": "week", "D": "day"}
FREQUENCY_OF_UNIT = {unit: frequency for frequency, unit in UNIT_OF_FREQUENCY.items()}
# The usual seasonal cycle of each frequency, in steps (the competitions' and statsforecast's defaults).
SEASON_LENGTHS = {"D": 7, "W": 52, "M": 12, "Q": 4, "Y": 1}
# Typical spacing in days of consecutive rows of each frequency, and the range accepted as that frequency.
_SPACING_DAYS = (("D", 1, 1), ("W", 7, 7), ("M", 28, 31), ("Q", 89, 92), ("Y", 365, 366))
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday: Monday 1969-12-29 starts week 0


def _days(dates) -> np.ndarray:
    """Days since 1970-01-01 of datetime64 values of any unit (ns, us, s, D: wide dates keep their day)."""
    return np.asarray(dates).astype("datetime64[D]").astype("int64")


def ordinals(dates, unit: str) -> np.ndarray:
    """The integer period in `unit` of each date (datetime64 array or Series, no missing values)."""
    values = np.asarray(dates)
    if unit == "day":
        return _days(values)
    if unit == "week":
        return (_days(values) + _EPOCH_WEEKDAY) // 7
    months = values.astype("datetime64[M]").astype("int64")  # months since 1970-01
    if unit == "month":
        return months + 1970 * 12
    if unit == "quarter":
        return (months + 1970 * 12) // 3
    if unit == "year":
        return months // 12 + 1970
    raise ValueError(f"unknown period unit {unit!r}; one of {', '.join(UNITS)}")


def label(ordinal: int, unit: str) -> str:
    """How people read the period `ordinal` of `unit`."""
    ordinal = int(ordinal)
    if unit == "year":
        return str(ordinal)
    if unit == "quarter":
        return f"{ordinal // 4}-Q{ordinal % 4 + 1}"
    if unit == "month":
        return f"{ordinal // 12}-{ordinal % 12 + 1:02d}"
    if unit == "week":
        thursday = datetime.date(1970, 1, 1) + datetime.timedelta(days=7 * ordinal)
        year, week, _ = thursday.isocalendar()
        return f"{year}-W{week:02d}"
    if unit == "day":
        return (datetime.date(1970, 1, 1) + datetime.timedelta(days=ordinal)).isoformat()
    raise ValueError(f"unknown period unit {unit!r}; one of {', '.join(UNITS)}")


def labels(values, unit: str) -> np.ndarray:
    """`label` of every integer in `values` (an object array of str), each distinct value labelled once."""
    values = np.asarray(values, dtype="int64")
    distinct, inverse = np.unique(values, return_inverse=True)
    return np.array([label(value, unit) for value in distinct.tolist()], dtype=object)[inverse]


def frequency_of_spacing(days: float) -> str | None:
    """The frequency whose row spacing `days` (a typical gap between consecutive rows) is; None for none."""
    for frequency, low, high in _SPACING_DAYS:
        if low <= days <= high:
            return frequency
    return None


def infer_frequency(dates) -> str | None:
    """The frequency of one key's rows from the median gap between its distinct dates; None with fewer
    than two dates or a spacing that is no calendar frequency (say, every 3 days)."""
    days = np.unique(_days(dates))
    if len(days) < 2:
        return None
    return frequency_of_spacing(float(np.median(np.diff(days))))


def steps(dates, frequency: str) -> np.ndarray:
    """Each date's position in steps of `frequency` (the ordinals of its unit): two rows k steps apart
    differ by k, whatever the number of days (12 months before 2021-03-01 is 2020-03-01)."""
    return ordinals(dates, UNIT_OF_FREQUENCY[frequency])


def resolve_frequency(frequency: str, period_unit: str, dates) -> str:
    """The frequency a key's rows are read with: `--frequency` when given, else inferred from the key's
    dates, else the frequency of `--period`'s unit, else daily. Every stage that counts steps (lags,
    horizons, seasons) resolves it with this one rule, so they agree on every key."""
    if frequency:
        return frequency
    return infer_frequency(dates) or FREQUENCY_OF_UNIT.get(period_unit, "D")


# Integers that read as calendar dates: (unit they stand for, digits, strptime format).
_CALENDAR_INTEGERS = (("month", 6, "%Y%m"), ("day", 8, "%Y%m%d"))


def calendar_integer_unit(values) -> str | None:
    """"month" when the distinct integer periods `values` read as yyyymm (202112, 202201: every one a
    valid year and month, and two consecutive months present that are not consecutive integers, the
    gap of 88 each new year), "day" for yyyymmdd likewise; None otherwise. Windows, lags and horizons
    count such values as integers, so they would slide over 88 "months" that do not exist."""
    distinct = np.unique(np.asarray(values, dtype="int64"))
    if len(distinct) < 2:
        return None
    for unit, digits, pattern in _CALENDAR_INTEGERS:
        if distinct[0] < 10 ** (digits - 1) or distinct[-1] >= 10 ** digits:
            continue
        dates = pd.to_datetime(pd.Series(distinct.astype(str)), format=pattern, errors="coerce")
        if dates.isna().any():
            continue
        calendar = ordinals(dates.to_numpy(), unit)
        consecutive = np.diff(calendar) == 1
        if (np.diff(distinct)[consecutive] != 1).any():
            return unit
    return None
