"""Sliding windows over periods, as in the article: SlidingWindows(size=3, period=1).

Each block is stamped with its period as event time (period p -> timestamp p
seconds) and Beam assigns it to every window [start, start + size) that
contains p. Inside a window the last `test_periods` periods are predicted and
the earlier ones train the model:

    periods       2013 2014 2015 2016 2017 2018
    window 2013   train train test
    window 2014        train train test
    window 2015             train train test
    window 2016                  train train test

A window is *planned* when it lies entirely inside the data's period range
(windows hanging over either end can never be complete, so they are not
groups). A planned key x window with fewer distinct periods than the window
size is skipped with reason `too_few_periods`.

`--window_mode=expanding` trains each window on every earlier period of the key too (the window
keeps its start and end: the test periods and the minimum length). `--window_anchor=key` places the
windows at each key's own end instead (the last one ends at its last observed period, the earlier
ones step back by --window_period, the last --n_windows of them); a window the key's history is too
short for is a group with no row, skipped with reason `too_short_history`. Both are cut from each
key's own periods (`WindowPlan.cut`), never by listing every start of the global range.

The windows are Beam's own: `WindowPlan.window_fn()` (in `window_plan`, which imports Beam only
there, so that code without Beam can cut the same windows) is the SlidingWindows the article
uses, and the tests check that `CutWindows` puts every row in exactly the
windows SlidingWindows assigns to its period. But they are cut from each key's
rows after the key's one shuffle, instead of by WindowInto + GroupByKey: a
window shuffle would copy every row into `size / period` windows and move it
again, which cost more than the fits of a cheap model (see bench/NOTE.md). With few keys for the
parallel slots, the cut windows take one more shuffle before the fits, which spreads them over every
slot (pipeline.stages.prepare.fanout).
"""

from __future__ import annotations

import apache_beam as beam

from pipeline.io.columns import calendar_integer_error
from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.stages.prepare.window_plan import EXPANDING, GLOBAL, KEY, SLIDING, WindowPlan
from pipeline.utils import periods, progress


def check_params(params: PipelineParams) -> None:
    """Window arithmetic and the plausible period range, before any work."""
    if params.window_size < 2:
        raise ParameterError("window_size", params.window_size, "an integer >= 2 (at least one training "
                             "period and one test period)")
    if params.test_periods >= params.window_size:
        raise ParameterError("test_periods", params.test_periods,
                             f"an integer in 1..{params.window_size - 1} (smaller than --window_size)")
    if params.window_period > params.window_size:
        raise ParameterError("window_period", params.window_period,
                             f"at most --window_size={params.window_size}, or some periods are never tested")
    if params.window_mode not in (SLIDING, EXPANDING):
        raise ParameterError("window_mode", params.window_mode, f"one of {SLIDING}, {EXPANDING}")
    if params.window_anchor not in (GLOBAL, KEY):
        raise ParameterError("window_anchor", params.window_anchor, f"one of {GLOBAL}, {KEY}")
    if params.n_windows < 0:
        raise ParameterError("n_windows", params.n_windows, "0 (every window that fits) or a positive integer")
    if params.min_period > params.max_period:
        raise ParameterError("max_period", params.max_period,
                             f"an integer >= --min_period={params.min_period}")
    if params.window_size > params.max_period - params.min_period + 1:
        raise ParameterError("window_size", params.window_size,
                             f"at most {params.max_period - params.min_period + 1}, the number of periods "
                             f"in --min_period..--max_period")


DISTINCT_PERIODS_CHECKED = 100_000  # distinct periods kept to recognise yyyymm(dd) integers; beyond, none is


class PeriodRangeFn(beam.CombineFn):
    """(first, last) period over (first, last[, distinct periods]) spans; None when there is none.

    With `refuse_calendar_integers` (an integer period column, no --period_gaps_ok), up to
    DISTINCT_PERIODS_CHECKED distinct periods are kept and the job fails, before any fit (every window
    waits on this range), when they read as yyyymm or yyyymmdd (utils.periods.calendar_integer_unit)."""

    def __init__(self, refuse_calendar_integers: bool = False, time_column: str = ""):
        self._refuse, self._time_column = refuse_calendar_integers, time_column

    def create_accumulator(self):
        return None

    def add_input(self, acc, span):
        first, last, *distinct = span
        return self._merge(acc, (first, last, set(distinct[0]) if self._refuse and distinct else None))

    def merge_accumulators(self, accumulators):
        merged = None
        for acc in accumulators:
            merged = self._merge(merged, acc)
        return merged

    @staticmethod
    def _merge(one, other):
        if one is None or other is None:
            return other if one is None else one
        kept = None if one[2] is None or other[2] is None else one[2] | other[2]
        if kept is not None and len(kept) > DISTINCT_PERIODS_CHECKED:
            kept = None  # too many to tell: a yyyymmdd column of 270 years, not worth the memory
        return min(one[0], other[0]), max(one[1], other[1]), kept

    def extract_output(self, acc):
        if acc is None:
            return None
        if self._refuse and acc[2]:
            unit = periods.calendar_integer_unit(sorted(acc[2]))
            if unit:
                raise ValueError(calendar_integer_error(unit, self._time_column))
        return acc[0], acc[1]


STRAIGHT, FANNED_OUT = "straight", "fanned_out"  # CutWindows' two paths (pipeline.stages.prepare.fanout)


class _CutWindowsFn(beam.DoFn):
    def __init__(self, plan: WindowPlan, time_column: str):
        self._plan, self._time_column = plan, time_column

    def process(self, element, period_range, fan_out=None):
        key, rows = element
        if period_range is None:
            return
        periods = rows[self._time_column].to_numpy()
        spread = fan_out is not None and fan_out["fanned_out"]
        cuts = list(self._plan.cut(periods, *period_range))
        progress.count_key(len(cuts))  # a local run's progress display, before the fits (nothing on Dataflow)
        for start, positions in cuts:
            rows_of_window = rows.iloc[positions] if isinstance(positions, slice) else rows.take(positions)
            window = key, start, rows_of_window.reset_index(drop=True)
            yield beam.pvalue.TaggedOutput(FANNED_OUT, window) if spread else window

    def finish_bundle(self):
        progress.flush()


class CutWindows(beam.PTransform):
    """(key, the key's rows) -> (key, window start, the window's rows) for every planned window, on
    one of two paths: {STRAIGHT: ..., FANNED_OUT: ...} (pipeline.stages.prepare.fanout).

    `period_range` is a singleton side input, the (first, last) period of the whole data:
    windows hanging over either end are not planned. `fan_out` is the singleton decision
    (`fanout.decide`): every window goes to FANNED_OUT when its "fanned_out" is true (None: every
    window goes STRAIGHT). Both are computed before the key shuffle, so that the cut stays fused with
    the shuffle's read and the runner splits it by key."""

    def __init__(self, plan: WindowPlan, time_column: str, period_range, fan_out=None):
        super().__init__()
        self._plan, self._time_column = plan, time_column
        self._period_range, self._fan_out = period_range, fan_out

    def expand(self, key_rows):
        side_inputs = [beam.pvalue.AsSingleton(self._period_range)]
        if self._fan_out is not None:
            side_inputs.append(beam.pvalue.AsSingleton(self._fan_out))
        cut = key_rows | "Cut" >> beam.ParDo(_CutWindowsFn(self._plan, self._time_column),
                                             *side_inputs).with_outputs(FANNED_OUT, main=STRAIGHT)
        return {STRAIGHT: cut[STRAIGHT], FANNED_OUT: cut[FANNED_OUT]}
