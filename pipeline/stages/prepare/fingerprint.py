"""The input fingerprint: a row count and an order-independent hash of the rows read.

The sum, modulo 2**64, of one 64-bit hash per row over the columns the pipeline reads: it does not
depend on chunking, worker count or row order, and any changed, added or removed row changes it.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pandas as pd

HASH_MODULUS = 2 ** 64


def _canonical(column: pd.Series) -> pd.Series:
    """One representation per value whatever dtype a chunk happened to get (3 == 3.0, None == NaN)."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return column.astype("float64")
    if pd.api.types.is_datetime64_any_dtype(column):
        return pd.Series(_nanoseconds(column), index=column.index).where(column.notna())
    if _is_text_or_date(column):
        codes, text = _distinct_text(column)
        return pd.Series(text[codes], index=column.index)  # code -1 (missing) picks the None
    missing = column.isna().to_numpy()  # element by element: a list is not missing
    return column.astype(str).astype(object).where(~missing, None)


def _nanoseconds(column: pd.Series) -> np.ndarray:
    """Nanoseconds since 1970 (UTC for a zoned column) as float64, in whatever unit the column holds
    them: a day out of [ns]'s range (9999-12-31) is hashed too, and a value has one representation."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_convert("UTC").dt.tz_localize(None)
    values = column.to_numpy()
    unit, _ = np.datetime_data(values.dtype)
    return values.view("int64").astype("float64") * float(np.timedelta64(1, unit) / np.timedelta64(1, "ns"))


def _is_text_or_date(column: pd.Series) -> bool:
    return not (pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column)
                or pd.api.types.is_datetime64_any_dtype(column)) and pd.api.types.infer_dtype(
        column, skipna=True) in ("string", "date")


def _distinct_text(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, the text of each distinct value followed by None): equal values have equal text, so
    str() runs once per distinct value (dates and keys repeat)."""
    codes, uniques = pd.factorize(column)
    return codes, np.array([str(value) for value in uniques] + [None], dtype=object)


def _column_hashes(column: pd.Series) -> np.ndarray:
    """pandas' hash of each value of the canonical column; text is hashed once per distinct value and
    spread by code, which gives the same per-row hashes (pandas hashes element by element)."""
    if _is_text_or_date(column):
        codes, text = _distinct_text(column)
        return _series_hashes(pd.Series(text))[codes]  # a Series as _canonical's: the same dtype inference
    return _series_hashes(_canonical(column))


def _series_hashes(series: pd.Series) -> np.ndarray:
    return pd.util.hash_pandas_object(series, index=False, categorize=False).to_numpy(dtype=np.uint64)


def row_hashes(chunk: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row: pandas.util.hash_pandas_object(canonical rows, index=False), whose
    columns' hashes are combined by pandas' own combine_hash_arrays."""
    from pandas.core.util.hashing import combine_hash_arrays  # the one step hash_pandas_object adds

    return combine_hash_arrays((_column_hashes(chunk[name]) for name in chunk.columns), len(chunk.columns))


def chunk_fingerprint(chunk: pd.DataFrame) -> dict:
    """Counters for one source chunk; summed over chunks they give the input fingerprint."""
    total = int(row_hashes(chunk).sum(dtype=np.uint64))  # wraps modulo 2**64, as intended
    return {"input_rows": len(chunk), "input_row_hash_sum": total}


def input_fingerprint(totals: dict) -> dict:
    rows = int(totals.get("input_rows", 0))
    row_hash_sum = int(totals.get("input_row_hash_sum", 0)) % HASH_MODULUS
    return {"rows": rows, "row_hash": f"{row_hash_sum:016x}",
            "method": "sum mod 2**64 of pandas.util.hash_pandas_object per row over the columns read"}


class FingerprintInput(beam.PTransform):
    """Source chunks -> per-chunk fingerprint counters (summed with the run's other counters)."""

    def expand(self, chunks):
        return chunks | "HashRows" >> beam.Map(chunk_fingerprint)
