"""Windowing semantics on hand-made data: which key x windows train, on which periods, and why skipped."""

import numpy as np
from apache_beam.transforms import window as beam_window
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.stages.prepare.windows import WindowPlan
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline


def test_window_plan_arithmetic():
    plan = WindowPlan(size=3, period=1, test_periods=1)
    assert plan.starts_within(2013, 2018) == [2013, 2014, 2015, 2016]
    assert list(plan.train_periods(2013)) == [2013, 2014]
    assert list(plan.test_periods_of(2013)) == [2015]
    wide = WindowPlan(size=4, period=2, test_periods=2)
    assert wide.starts_within(2013, 2020) == [2014, 2016]
    assert list(wide.train_periods(2014)) == [2014, 2015]
    assert list(wide.test_periods_of(2014)) == [2016, 2017]


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 6), period=st.integers(1, 4), offset=st.integers(-3, 3),
       periods=st.lists(st.integers(1990, 2010), min_size=1, max_size=40), in_order=st.booleans())
def test_cut_windows_are_the_windows_beam_assigns(size, period, offset, periods, in_order):
    """Each row lands in exactly the windows Beam's SlidingWindows assigns to its period (as event
    time), restricted to the windows inside the data's period range; row order is kept. Rows in
    period order (the usual case) are cut as slices, others by position."""
    plan = WindowPlan(size=size, period=period, test_periods=1)
    values = np.array(sorted(periods) if in_order else periods) + offset
    first, last = int(values.min()), int(values.max())
    expected = {}
    for position, value in enumerate(values):
        context = beam_window.WindowFn.AssignContext(timestamp=int(value))
        for window in plan.window_fn().assign(context):
            start = int(window.start.micros // 1_000_000)
            if start >= first and plan.end_of(start) <= last:
                expected.setdefault(start, []).append(position)
    cuts = list(plan.cut(values, first, last))
    got = {start: list(np.arange(len(values))[positions]) for start, positions in cuts}
    assert got == expected
    if in_order:
        assert all(isinstance(positions, slice) for _, positions in cuts)


def test_which_key_windows_train_and_skip(tmp_path, write_parquet):
    # A: every year 2001-2005. B: 2004 missing. C: two years only.
    data = make_rows({"A": [2001, 2002, 2003, 2004, 2005], "B": [2001, 2002, 2003, 2005], "C": [2001, 2002]})
    summary = run_pipeline(tmp_path / "out", f"--input={write_parquet(data)}", "--model=ridge")

    ledger = read_output(str(tmp_path / "out"), "ledger")
    status = {(r.shop_id, r.window_start): (r.status, r.reason) for r in ledger.itertuples()}
    assert status == {
        ("A", 2001): ("trained", ""), ("A", 2002): ("trained", ""), ("A", 2003): ("trained", ""),
        ("B", 2001): ("trained", ""),
        ("B", 2002): ("skipped", "too_few_periods"), ("B", 2003): ("skipped", "too_few_periods"),
        ("C", 2001): ("skipped", "too_few_periods"), ("C", 2002): ("skipped", "too_few_periods"),
        # C has no row in window 2003 (2003-2005): that key x window is not a group
    }
    predictions = read_output(str(tmp_path / "out"), "predictions")
    tested = predictions.groupby(["shop_id", "window_start"])["year"].unique()
    assert {k: list(v) for k, v in tested.items()} == {
        ("A", 2001): [2003], ("A", 2002): [2004], ("A", 2003): [2005], ("B", 2001): [2003]}
    assert (predictions["window_end"] == predictions["window_start"] + 2).all()
    metrics = read_output(str(tmp_path / "out"), "metrics").set_index(["shop_id", "window_start"])
    assert metrics.loc[("A", 2002), "rows_train"] == 40 and metrics.loc[("A", 2002), "rows_test"] == 20
    assert summary["groups_planned"] == 8 and summary["groups_trained"] == 4
    assert summary["groups_skipped"] == 4 and summary["skipped_by_reason"] == {"too_few_periods": 4}
    assert set(summary["rmse_by_test_period"]) == {"2003", "2004", "2005"}


def test_period_and_test_span(tmp_path, write_parquet):
    data = make_rows({"A": list(range(2001, 2009))})
    run_pipeline(tmp_path / "out", f"--input={write_parquet(data)}", "--model=ridge",
                 "--window_size=4", "--window_period=2", "--test_periods=2")
    predictions = read_output(str(tmp_path / "out"), "predictions")
    tested = predictions.groupby("window_start")["year"].unique()
    assert {k: sorted(v) for k, v in tested.items()} == {
        2002: [2004, 2005], 2004: [2006, 2007]}
    metrics = read_output(str(tmp_path / "out"), "metrics")
    assert set(metrics["rows_train"]) == {40} and set(metrics["test_start"]) == {2004, 2006}
