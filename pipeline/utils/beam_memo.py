"""Memos for facts Beam derives again and again while it builds, translates and runs a pipeline.

- A function's arguments and their defaults (`core.get_function_args_defaults`, an `inspect.signature`
  each time): Beam asks for every method of every DoFn when the ParDo is made, twice when the graph is
  translated and twice more for every bundle the local runner processes, about 27,000 times in a small
  run. They are a fact of the function object; the memo holds functions weakly (a run's lambdas go
  with the run), and only plain functions and methods bound to them, whose signature is the function's.
- A DoFn's state and timer specs (`userstate.get_dofn_specs`, which looks at every method of the DoFn):
  asked four times of each DoFn while the graph is built and translated, twice of each copy the local
  runner unpickles for a bundle. They follow from the DoFn's methods, which do not change once it is made;
  the memo holds DoFns weakly.
- A view of pipeline options (`PipelineOptions.view_as`): each call builds and runs a new argument
  parser, about 450 times per run for the type-check options alone. Views are facades over one shared
  store of values, so the view made the first time serves every later call.

Together they were more than half of the CPU of a small local run (bench/NOTE.md, "Hostile-input fuzz");
what Beam computes from them is unchanged. `install()` is idempotent and leaves Beam alone if a later
version renames what it wraps.
"""

from __future__ import annotations

import functools
import types
import weakref

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms import core, userstate

_ARGUMENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # function -> {bound: (args, defaults)}
_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # options -> {view class: view}
_SPECS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # DoFn -> (state specs, timer specs)


def _memo_arguments(derive):
    @functools.wraps(derive)
    def arguments(f):
        bound = isinstance(f, types.MethodType)
        function = f.__func__ if bound else f
        if not isinstance(function, types.FunctionType):
            return derive(f)
        known = _ARGUMENTS.setdefault(function, {})
        if bound not in known:
            known[bound] = derive(f)
        args, defaults = known[bound]
        return list(args), list(defaults)  # callers get lists of their own, as from Beam

    arguments.memoized = True
    return arguments


def _memo_views(view_as):
    @functools.wraps(view_as)
    def cached_view_as(options, cls):
        views = _VIEWS.setdefault(options, {})
        view = views.get(cls)
        if view is None or view._all_options is not options._all_options:  # noqa: SLF001
            view = views[cls] = view_as(options, cls)
        return view

    cached_view_as.memoized = True
    return cached_view_as


def _memo_specs(derive):
    @functools.wraps(derive)
    def specs(dofn):
        try:
            known = _SPECS.get(dofn)
        except TypeError:  # a DoFn that is not hashable (or not weakly referable): as Beam does
            return derive(dofn)
        if known is None:
            known = _SPECS[dofn] = derive(dofn)
        state, timers = known
        return set(state), set(timers)

    specs.memoized = True
    return specs


def install() -> None:
    """Wraps Beam's derivations with their memos, once per process."""
    derive = getattr(core, "get_function_args_defaults", None)
    if callable(derive) and not getattr(derive, "memoized", False):
        core.get_function_args_defaults = _memo_arguments(derive)
    specs = getattr(userstate, "get_dofn_specs", None)
    if callable(specs) and not getattr(specs, "memoized", False):
        userstate.get_dofn_specs = _memo_specs(specs)
    view_as = PipelineOptions.__dict__.get("view_as")
    if callable(view_as) and not getattr(view_as, "memoized", False):
        PipelineOptions.view_as = _memo_views(view_as)
