"""The memos of pipeline.utils.beam_memo give what Beam itself derives, and Beam still runs with them."""

from __future__ import annotations

import functools
import gc
import weakref

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TypeOptions
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import core, userstate
from apache_beam.transforms.userstate import BagStateSpec, TimerSpec, on_timer

from pipeline.utils import beam_memo

beam_memo.install()
UNCACHED = core.get_function_args_defaults.__wrapped__


class _Buffered(beam.DoFn):
    """A DoFn whose methods' defaults are state and timer parameters: what get_dofn_specs looks for."""

    BUFFER = BagStateSpec("buffer", beam.coders.VarIntCoder())
    FLUSH = TimerSpec("flush", beam.TimeDomain.WATERMARK)

    def process(self, element, buffer=beam.DoFn.StateParam(BUFFER), flush=beam.DoFn.TimerParam(FLUSH),
                window=beam.DoFn.WindowParam):
        buffer.add(element[1])
        flush.set(window.end)

    @on_timer(FLUSH)
    def flushed(self, buffer=beam.DoFn.StateParam(BUFFER)):
        yield sum(buffer.read())


def plain(a, b=1, *rest, c=2, **kw):
    return a


def test_arguments_are_beams_own_for_functions_methods_and_the_rest():
    dofn = _Buffered()
    for f in (plain, dofn.process, dofn.flushed, _Buffered.process, lambda x, y=3: x, functools.partial(plain, 1),
              len, str.upper, int):
        assert core.get_function_args_defaults(f) == UNCACHED(f)
    assert core.get_function_args_defaults(dofn.process)[0] == ["element", "buffer", "flush", "window"]
    assert userstate.get_dofn_specs(dofn) == ({_Buffered.BUFFER}, {_Buffered.FLUSH})


def test_each_caller_gets_values_of_its_own():
    args, defaults = core.get_function_args_defaults(plain)
    args.append("x"), defaults.clear()
    assert core.get_function_args_defaults(plain) == (["a", "b"], [1])
    dofn = _Buffered()
    state, timers = userstate.get_dofn_specs(dofn)
    state.clear(), timers.clear()
    assert userstate.get_dofn_specs(dofn) == userstate.get_dofn_specs.__wrapped__(dofn) != (set(), set())


def test_a_function_is_not_kept_alive_by_the_memo():
    def made_per_run(x, y=5):
        return x

    core.get_function_args_defaults(made_per_run)
    assert made_per_run in beam_memo._ARGUMENTS  # noqa: SLF001
    gone = weakref.ref(made_per_run)
    del made_per_run
    gc.collect()
    assert gone() is None


def test_views_share_one_store_of_values():
    options = PipelineOptions(["--runner=DirectRunner", "--no_pipeline_type_check"])
    view = options.view_as(StandardOptions)
    assert options.view_as(StandardOptions) is view
    view.runner = "Other"
    assert options.view_as(StandardOptions).runner == "Other"
    assert options.view_as(TypeOptions).pipeline_type_check is False
    assert PipelineOptions(["--runner=DirectRunner"]).view_as(StandardOptions).runner == "DirectRunner"


def test_install_twice_wraps_once():
    wrapped = core.get_function_args_defaults, userstate.get_dofn_specs, PipelineOptions.view_as
    beam_memo.install()
    assert (core.get_function_args_defaults, userstate.get_dofn_specs, PipelineOptions.view_as) == wrapped
    assert all(getattr(f, "memoized", False) for f in wrapped)


def test_a_stateful_pipeline_runs_as_before():
    with beam.Pipeline("FnApiRunner") as pipeline:
        totals = (pipeline | beam.Create([("a", 1), ("a", 2), ("b", 5)]) | beam.ParDo(_Buffered()))
        assert_that(totals, equal_to([3, 5]))
