"""Frames through a shuffle: inline bytes, or spilled to the folder a local run's processes share; and
the prediction frames the fit stage joins (stages.fit.results.PredictionBuffer)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.stages.fit.results import PredictionBuffer
from pipeline.utils import packing


def _frames():
    return [pd.DataFrame({"year": np.arange(n) + 2000, "sales": np.linspace(0, 1, n)}) for n in (3, 0, 5)]


def test_frames_cross_as_bytes_without_a_spill_folder(monkeypatch):
    monkeypatch.delenv(packing.SPILL_ENV, raising=False)
    packed = packing.pack_all(_frames())
    assert all(isinstance(p, bytes) for p in packed)
    for frame, part in zip(_frames(), packed):
        pd.testing.assert_frame_equal(packing.unpack(part), frame)


def test_a_local_run_spills_the_frames_once_and_shuffles_references(monkeypatch):
    with packing.spill_folder(True) as folder:
        assert os.environ[packing.SPILL_ENV] == folder
        packed = packing.pack_all(_frames())
        assert [p[0] for p in packed] == [packing.SPILLED] * 3
        assert len({p[1] for p in packed}) == 1 and len(os.listdir(folder)) == 1  # one file per call
        assert len(packing.pack(_frames()[0])) == 4 and len(os.listdir(folder)) == 2
        for frame, part in zip(_frames(), packed):
            pd.testing.assert_frame_equal(packing.unpack(part), frame)
    assert not os.path.exists(folder) and packing.SPILL_ENV not in os.environ  # deleted on the way out
    with packing.spill_folder(False) as none:
        assert none is None and packing.SPILL_ENV not in os.environ


def test_arrow_tables_are_sized_from_their_buffers_not_by_pickling():
    table = pa.table({"x": np.arange(100_000, dtype=np.float64)})
    impl = packing.ArrowTableCoder().get_impl()
    assert impl.estimate_size(table) == table.nbytes
    assert impl.decode(impl.encode(table)).equals(table)


def _window(key: str, rows: int, start: int) -> dict:
    return {"shop_id": np.full(rows, key, dtype=object), "window_start": np.full(rows, start),
            "predicted": np.arange(rows, dtype=float) + start}


def test_prediction_buffer_joins_windows_in_order_and_empties_when_full():
    buffer = PredictionBuffer(rows=10)
    assert buffer.add(_window("a", 4, 1)) is None and buffer.add(_window("b", 5, 2)) is None
    full = buffer.add(_window("c", 3, 3))  # 12 rows >= 10: the joined frame, the buffer empty
    assert list(full["shop_id"]) == ["a"] * 4 + ["b"] * 5 + ["c"] * 3
    assert list(full["predicted"]) == [1, 2, 3, 4, 2, 3, 4, 5, 6, 3, 4, 5]
    assert buffer.rows == 0 and buffer.take() is None
    buffer.add(_window("d", 2, 4))
    rest = buffer.take()  # what a bundle leaves
    assert list(rest["shop_id"]) == ["d", "d"] and buffer.take() is None
