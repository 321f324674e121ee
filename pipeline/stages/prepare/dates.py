"""The date column read as written: one calendar day per row, or that row marked bad (bad_date).

- Dates and timestamps of any unit are taken as their calendar day; a zoned timestamp as the day on
  its own clock (a Parquet column with a zone, DuckDB's TIMESTAMPTZ: UTC).
- Integers (and integral floats, a CSV integer column with blanks) are read as yyyymmdd: 20210314 is
  2021-03-14; anything else (20211399, 7, 1.5) is not a date.
- Text is parsed with one format per column: --date_format, or the format of the first values that
  have a recognisable one (ISO 8601 text of any precision counts as one format). A value in another
  format is not a date: "03/04/2021" is never read month-first in one row and day-first in the next.
  A trailing UTC offset ("...T10:00:00+02:00", "Z") is dropped: the day is the one written.
- A day outside what pandas' nanosecond timestamps hold (before 1677-09-22 or after 2262-04-11, such
  as the warehouse sentinels 0001-01-01 and 9999-12-31) is not a date: its row alone is rejected.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

FIRST_DAY, LAST_DAY = np.datetime64("1677-09-22", "D"), np.datetime64("2262-04-11", "D")  # whole days in [ns]
ISO_FORMAT = "ISO8601"  # pandas' name for every ISO 8601 form (date, date and time, any precision)
FORMAT_SAMPLE = 100  # first non-null values tried when inferring a column's format
_OFFSET = re.compile(r"(\d:\d\d(?::\d\d(?:[.,]\d*)?)?)\s*(?:Z|UTC|GMT|[+-]\d\d(?::?\d\d)?)$", re.IGNORECASE)
_NAT_DAY = np.datetime64("NaT", "D")


def parse_dates(column: pd.Series, date_format: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(each value's calendar day as datetime64[ns], with NaT where bad; mask of the values that are not a date)."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_localize(None)  # the wall-clock time in the value's own zone
    if pd.api.types.is_datetime64_dtype(column.dtype):
        days = column.to_numpy().astype("datetime64[D]")
    elif pd.api.types.is_bool_dtype(column.dtype):
        days = np.full(len(column), _NAT_DAY)
    elif pd.api.types.is_numeric_dtype(column.dtype):
        days = _yyyymmdd(column)
    elif pd.api.types.infer_dtype(column, skipna=True) in ("date", "datetime"):
        days = np.array([_python_day(value) for value in column], dtype="datetime64[D]")
    else:
        days = _text_days(column, date_format)
    bad = np.isnat(days) | (days < FIRST_DAY) | (days > LAST_DAY)
    return np.where(bad, _NAT_DAY, days).astype("datetime64[ns]"), bad


def _yyyymmdd(column: pd.Series) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").astype("float64").to_numpy()
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(values) & (values == np.floor(values)) & (values >= 1000_0101) & (values <= 9999_1231)
    text = pd.Series(np.where(integral, values, 0).astype("int64"), index=column.index).astype(str).where(integral)
    return _days(pd.to_datetime(text, format="%Y%m%d", errors="coerce"))


def _python_day(value) -> np.datetime64:
    """datetime.date / datetime.datetime (a Parquet date32 column, an object column) -> its day."""
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return _NAT_DAY
    try:
        return np.datetime64(value.date() if hasattr(value, "date") else value, "D")
    except (TypeError, ValueError, AttributeError):
        return _NAT_DAY


def _text_days(column: pd.Series, date_format: str) -> np.ndarray:
    text = column.astype("string").str.strip()
    text = text.str.replace(_OFFSET, r"\1", regex=True)
    chosen = date_format or infer_format(text)
    if chosen is None:
        return np.full(len(column), _NAT_DAY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _days(pd.to_datetime(text, format=chosen, errors="coerce"))


def infer_format(text: pd.Series) -> str | None:
    """The format of the first of the column's non-null values that has a recognisable one; ISO 8601
    (year first, dashes) in any precision counts as one format. None when no value has one."""
    for value in text.dropna().head(FORMAT_SAMPLE):
        found = guess_datetime_format(str(value))
        if found:
            return ISO_FORMAT if found.startswith("%Y-%m-%d") else found
    return None


def _days(parsed: pd.Series) -> np.ndarray:
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    return parsed.to_numpy().astype("datetime64[D]")
