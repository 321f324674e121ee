"""The date column read as written: one calendar day per row, or that row marked bad (bad_date).

- Dates and timestamps of any unit are taken as their calendar day; a zoned timestamp as the day on
  its own clock (a Parquet column with a zone, DuckDB's TIMESTAMPTZ: UTC).
- Integers (and integral floats, a CSV integer column with blanks) are read as yyyymmdd: 20210314 is
  2021-03-14; anything else (20211399, 7, 1.5) is not a date.
- Text is parsed with one format per column: --date_format, or the format that reads the most of the
  column's values (format_votes; ISO 8601 text of any precision counts as one format; a tie goes to
  the format of the earliest value, read month-first when it reads either way). A value in another
  format is not a date: "03/04/2021" is never read month-first in one row and day-first in the next.
  The format is chosen per chunk (up to 50,000 rows) from that chunk's values, and the run checks that
  every chunk chose the one that reads the most values of the whole column (AgreedFormatFn): a first
  chunk that reads either way ("03/04/2021") and a later one that reads day-first only ("25/04/2021")
  fail the run before any fit, naming the --date_format to pass. That check needs no second pass
  over the data, which a format inferred from the whole column before parsing would.
  A trailing UTC offset ("...T10:00:00+02:00", "Z") is dropped: the day is the one written.
- A day outside what pandas' nanosecond timestamps hold (before 1677-09-22 or after 2262-04-11, such
  as the warehouse sentinels 0001-01-01 and 9999-12-31) is not a date: its row alone is rejected.
"""

from __future__ import annotations

import re
import warnings

import apache_beam as beam
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
        days = _python_days(column)
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


def _python_days(column: pd.Series) -> np.ndarray:
    """`_python_day` of each value, converted once per distinct value (a date repeats across keys);
    nulls (factorize's code -1) take the NaT put last."""
    codes, distinct = pd.factorize(column)
    return np.array([*(_python_day(value) for value in distinct), _NAT_DAY], dtype="datetime64[D]")[codes]


def _python_day(value) -> np.datetime64:
    """datetime.date / datetime.datetime (a Parquet date32 column, an object column) -> its day."""
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return _NAT_DAY
    try:
        return np.datetime64(value.date() if hasattr(value, "date") else value, "D")
    except (TypeError, ValueError, AttributeError):
        return _NAT_DAY


def is_text(column: pd.Series) -> bool:
    """Whether parse_dates reads `column` as text, with a format (inferred or --date_format)."""
    return not (isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column.dtype)
                or pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_numeric_dtype(column.dtype)
                or pd.api.types.infer_dtype(column, skipna=True) in ("date", "datetime"))


def _normalised(column: pd.Series) -> pd.Series:
    return column.astype("string").str.strip().str.replace(_OFFSET, r"\1", regex=True)


def _parsed(text: pd.Series, date_format: str) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pd.to_datetime(text, format=date_format, errors="coerce")


def _text_days(column: pd.Series, date_format: str) -> np.ndarray:
    text = _normalised(column)
    chosen = date_format or choose_format(_votes(text))
    if chosen is None:
        return np.full(len(column), _NAT_DAY)
    return _days(_parsed(text, chosen))


def format_votes(column: pd.Series) -> dict[str, tuple[int, int]]:
    """{format: (values of `column` it reads, its rank)} for the formats the column's first
    FORMAT_SAMPLE values may be in; empty when the column is not text or none has a format. A value that
    reads either way ("03/04/2021") proposes month-first, then day-first; rank: the order proposed."""
    return _votes(_normalised(column)) if is_text(column) else {}


def _votes(text: pd.Series) -> dict[str, tuple[int, int]]:
    proposed: list[str] = []
    sample = text.dropna().head(FORMAT_SAMPLE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for dayfirst in (False, True):  # every value month-first first: the earliest value's format ranks first
            for value in sample:
                found = guess_datetime_format(str(value), dayfirst=dayfirst)
                if found and found.startswith("%Y-"):  # year first: ISO 8601 (never year-day-month)
                    found = None if dayfirst else ISO_FORMAT
                if found and found not in proposed:
                    proposed.append(found)
    return {name: (int(_parsed(text, name).notna().sum()), rank) for rank, name in enumerate(proposed)}


def choose_format(votes: dict[str, tuple[int, int]]) -> str | None:
    """The format that reads the most values; a tie goes to the lowest rank. None when there is none."""
    return min(votes, key=lambda name: (-votes[name][0], votes[name][1], name)) if votes else None


class AgreedFormatFn(beam.CombineFn):
    """The text date column's format over every chunk's format_votes (with the format each chunk chose):
    the one that reads the most values of the whole column, or None. When a chunk chose another, the
    run fails (before any fit, so that no value is read in two formats), naming the --date_format
    that reads the most values. Ranks from different chunks are compared by their lowest."""

    def __init__(self, date_column: str = "date"):
        self._date_column = date_column

    def create_accumulator(self):
        return {}, set()

    def add_input(self, acc, chunk_votes):
        chosen, votes = chunk_votes
        return self.merge_accumulators([acc, ({name: vote for name, vote in votes.items()}, {chosen})])

    def merge_accumulators(self, accumulators):
        totals, chosen = {}, set()
        for votes, picked in accumulators:
            for name, (count, rank) in votes.items():
                before = totals.get(name, (0, rank))
                totals[name] = (before[0] + count, min(before[1], rank))
            chosen |= picked
        return totals, chosen

    def extract_output(self, acc):
        totals, chosen = acc
        best = choose_format(totals)
        others = sorted(chosen - {best})
        if others:
            read = ", ".join(f"{name}: {totals[name][0]}" for name in sorted(totals, key=lambda n: -totals[n][0]))
            raise ValueError(
                f"the {self._date_column} column's text reads in more than one format across the input's chunks "
                f"(values each format reads: {read}): some chunks were read as {', '.join(others)}, but "
                f"{best} reads the most; pass --date_format={best} (or the format the column is written in)")
        return best


def _days(parsed: pd.Series) -> np.ndarray:
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    return parsed.to_numpy().astype("datetime64[D]")
