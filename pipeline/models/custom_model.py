"""Bring your own model: `--model=package.module:callable`, from modules the operator allows.

The allow-list is the environment variable PIPELINE_MODEL_MODULES (comma-separated
module or package names; empty by default, so no user code runs unless the image
says so). A spec is checked before any work: its syntax, its module against the
allow-list (before anything is imported), then the import, and the callable must be
*defined* in an allowed module (a name an allowed module merely re-exports, such
as `from os import system`, is refused). Nothing is downloaded or evaluated from
the parameter string; only installed code is imported.

Two protocols:
- a function `fit_predict(train, test, **model_params)` receiving the training and
  the test DataFrame (key, period, date, target and feature columns; the test
  frame's target is all NaN) and returning the test predictions: an array or list of
  numbers in the test frame's order, or a DataFrame / list of dicts with a
  `predicted` (or `predict`) column, matched on the date column when it has one.
  A `seed` keyword, when the function declares it, receives the key x window seed.
- a class following the scikit-learn estimator protocol: `Class(**model_params)`,
  `fit(X, y)`, `predict(X)` on DataFrames of the feature columns; `random_state`
  is set to the key x window seed when the estimator has that parameter, and `n_jobs`
  to --model_threads unless --model_params gives it.

Either way, the fit runs with --model_threads threads in every OpenMP and BLAS pool
(pipeline.utils.threads). The fit itself, of a user's model or a registry one, is pipeline.models.model_fit's.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re

from pipeline.models import registry
from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams

ALLOW_LIST_ENV = "PIPELINE_MODEL_MODULES"
SPEC_RE = re.compile(r"^(?P<module>[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*):(?P<name>[A-Za-z][A-Za-z0-9_]*)$")


def is_user_model(model: str) -> bool:
    return model not in registry.REGISTRY


def allowed_modules(environ=None) -> tuple[str, ...]:
    raw = (os.environ if environ is None else environ).get(ALLOW_LIST_ENV, "")
    return tuple(name.strip() for name in raw.split(",") if name.strip())


def _within(module: str, allowed: tuple[str, ...]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in allowed)


def _refuse(spec: str, why: str) -> ParameterError:
    allowed = allowed_modules()
    listed = ", ".join(allowed) if allowed else "empty, so no user model is accepted"
    return ParameterError(
        "model", spec, f"one of {', '.join(registry.REGISTRY)}, or package.module:callable from a module in the "
        f"allow-list {ALLOW_LIST_ENV} (now: {listed}); here {why}")


def load(spec: str, check_allowed: bool = True):
    """The user's function or estimator class for `spec`; ParameterError when it is not acceptable."""
    match = SPEC_RE.match(spec)
    if not match:
        raise _refuse(spec, "neither a registry name nor of the form package.module:callable (a public name, "
                            "no expression)")
    module_name, name = match["module"], match["name"]
    allowed = allowed_modules()
    if check_allowed and not _within(module_name, allowed):
        raise _refuse(spec, f"module {module_name!r} is not allowed")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _refuse(spec, f"module {module_name!r} cannot be imported ({exc})") from None
    target = getattr(module, name, None)
    if target is None:
        raise _refuse(spec, f"module {module_name!r} has no attribute {name!r}")
    defined_in = getattr(target, "__module__", None) or ""
    if check_allowed and not _within(defined_in, allowed):
        raise _refuse(spec, f"{name!r} is defined in {defined_in!r}, not in an allowed module")
    if inspect.isclass(target):
        if not (callable(getattr(target, "fit", None)) and callable(getattr(target, "predict", None))):
            raise _refuse(spec, f"class {name!r} has no fit and predict methods")
    elif inspect.isfunction(target):
        positional = [p for p in inspect.signature(target).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
        if len(positional) < 2 and not any(p.kind == p.VAR_POSITIONAL for p in positional):
            raise _refuse(spec, f"function {name!r} must take (train, test)")
    else:
        raise _refuse(spec, f"{name!r} is neither a function nor an estimator class")
    return target


def check_params(params: PipelineParams) -> None:
    check_model(params.model, params.model_params)
    if registry.takes_regressors(params.model) and not (params.features or params.calendar_features):
        raise ParameterError("features", ",".join(params.features),
                             f"at least one feature column or calendar feature for {params.model}, whose "
                             "regressors are the features known in the future (not those generated from the "
                             "target history)")


def check_model(model: str, model_params: dict) -> None:
    """Launch-time check of a model (registry name or user spec) with these hyperparameters."""
    if is_user_model(model):
        check(model, model_params)  # allow-list first, before any import
    else:
        registry.check_model(model, model_params)


def check(spec: str, model_params: dict) -> None:
    """Launch-time check of a user model spec and its hyperparameters."""
    target = load(spec)
    if inspect.isclass(target) and model_params:
        try:
            target(**model_params)
        except TypeError as exc:
            raise ParameterError("model_params", model_params, f"parameters {spec} accepts: {exc}") from None
