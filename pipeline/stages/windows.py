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

The windows are Beam's own: `WindowPlan.window_fn()` (in `window_plan`, which imports Beam only
there, so that code without Beam can cut the same windows) is the SlidingWindows the article
uses, and the tests check that `CutWindows` puts every row in exactly the
windows SlidingWindows assigns to its period. But they are cut from each key's
rows after the key's one shuffle, instead of by WindowInto + GroupByKey: a
window shuffle would copy every row into `size / period` windows and move it
again, which cost more than the fits of a cheap model (see bench/NOTE.md). With few keys for the
parallel slots, the cut windows take one more shuffle before the fits, which spreads them over every
slot (pipeline.stages.fanout).
"""

from __future__ import annotations

import apache_beam as beam

from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.stages.window_plan import WindowPlan
from pipeline.utils import progress


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
    if params.min_period > params.max_period:
        raise ParameterError("max_period", params.max_period,
                             f"an integer >= --min_period={params.min_period}")
    if params.window_size > params.max_period - params.min_period + 1:
        raise ParameterError("window_size", params.window_size,
                             f"at most {params.max_period - params.min_period + 1}, the number of periods "
                             f"in --min_period..--max_period")


class PeriodRangeFn(beam.CombineFn):
    """(first, last) period over (first, last) pairs; None when there is none."""

    def create_accumulator(self):
        return None

    def add_input(self, acc, span):
        return span if acc is None else (min(acc[0], span[0]), max(acc[1], span[1]))

    def merge_accumulators(self, accumulators):
        merged = None
        for acc in accumulators:
            if acc is not None:
                merged = self.add_input(merged, acc)
        return merged

    def extract_output(self, acc):
        return acc


STRAIGHT, FANNED_OUT = "straight", "fanned_out"  # CutWindows' two paths (pipeline.stages.fanout)


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
    one of two paths: {STRAIGHT: ..., FANNED_OUT: ...} (pipeline.stages.fanout).

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
