"""pipeline.utils.frames gives the frames pandas' own row selection and concat give, column types included."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.utils import frames


def _rows(n: int, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"period": np.arange(offset, offset + n),
                         "date": pd.date_range("2020-01-01", periods=n, freq="MS") + pd.DateOffset(months=offset),
                         "sales": np.linspace(0.0, 1.0, n), "note": [f"r{i}" if i % 3 else None for i in range(n)]},
                        index=np.arange(100, 100 + n))  # an index that is not positions: the result's is fresh


def test_take_rows_is_pandas_row_selection_with_a_fresh_index():
    rows = _rows(12)
    mask = rows["period"].to_numpy() % 4 != 1
    got = frames.take_rows(rows, mask, ["sales", "date", "note"])
    pd.testing.assert_frame_equal(got, rows.loc[mask, ["sales", "date", "note"]].reset_index(drop=True))
    pd.testing.assert_frame_equal(frames.take_rows(rows, np.array([5, 0])), rows.iloc[[5, 0]].reset_index(drop=True))
    assert len(frames.take_rows(rows, np.zeros(12, bool))) == 0


def test_take_rows_keeps_an_extension_column_as_pandas_does():
    rows = _rows(6).assign(count=pd.array([1, None, 3, 4, None, 6], dtype="Int64"))
    mask = np.array([True, True, False, True, False, True])
    got = frames.take_rows(rows, mask)
    assert got["count"].dtype == "Int64"
    pd.testing.assert_frame_equal(got, rows.loc[mask].reset_index(drop=True))


def test_stack_is_pandas_concat_also_when_the_column_types_differ():
    first, second = _rows(5), _rows(3, offset=5)
    columns = ["period", "date", "sales"]
    expected = pd.concat([first[columns], second[columns]], ignore_index=True)
    pd.testing.assert_frame_equal(frames.stack([first, second], columns), expected)
    second = second.assign(period=second["period"].astype(float))  # int then float: pandas makes it float
    expected = pd.concat([first[columns], second[columns]], ignore_index=True)
    got = frames.stack([first, second], columns)
    assert got["period"].dtype == np.float64
    pd.testing.assert_frame_equal(got, expected)
