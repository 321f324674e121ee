"""Row selections and stacks of small DataFrames, column by column in numpy.

A key's rows and a window's rows are frames of tens of rows, handled once per key or key x window:
there pandas' own `loc[mask].drop(...).reset_index()` or `concat([a[columns], b[columns]])` cost
more in bookkeeping (indexes, block plans, one copy per step) than moving the values. These give the
same frames (same columns, dtypes, values, a fresh RangeIndex) from one copy of each column; a column
that numpy does not hold (an extension dtype) or a stack whose dtypes differ takes pandas' own way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _numpy_columns(frame: pd.DataFrame, columns) -> dict | None:
    """{name: the column's numpy array} of `columns`; None when one of them is not a numpy column."""
    arrays = {}
    for name in columns:
        values = frame[name]
        if not isinstance(values.dtype, np.dtype):
            return None
        arrays[name] = values.to_numpy()
    return arrays


def take_rows(frame: pd.DataFrame, positions: np.ndarray, columns=None) -> pd.DataFrame:
    """`frame.iloc[positions][columns].reset_index(drop=True)`: the rows at `positions` (or where a
    boolean mask is true), in `columns` (default: all)."""
    columns = list(frame.columns) if columns is None else list(columns)
    arrays = _numpy_columns(frame, columns) if columns else None
    if arrays is None or len(arrays) < len(columns):  # an extension column, no column, or a name twice
        return frame.iloc[positions][columns].reset_index(drop=True)
    # Fresh arrays (numpy's fancy indexing copies): pandas need not copy them again. No `columns=`:
    # with a dict, pandas would reindex the frame by it, which costs more than the rest.
    return pd.DataFrame({name: values[positions] for name, values in arrays.items()}, copy=False)


def stack(frames: list[pd.DataFrame], columns) -> pd.DataFrame:
    """`pd.concat([f[columns] for f in frames], ignore_index=True)`."""
    columns = list(columns)
    parts = [_numpy_columns(frame, columns) for frame in frames] if columns else [None]
    if any(part is None or len(part) < len(columns) for part in parts) or any(
            part[name].dtype != parts[0][name].dtype for part in parts[1:] for name in columns):
        return pd.concat([frame[columns] for frame in frames], ignore_index=True)
    return pd.DataFrame({name: np.concatenate([part[name] for part in parts]) for name in columns}, copy=False)
