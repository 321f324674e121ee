"""The model registry: each `--model` name is a scikit-learn-style estimator.

Estimators are configured by plain parameters (`--model_params`), fitted with
`fit(X, y)` and used with `predict(X)`. Seeds and thread counts are set here so
that every key x window gets its own reproducible seed and no fit
oversubscribes the worker's cores.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
from typing import Any

import numpy as np

from pipeline.models import combination, statistical
from pipeline.params.declare import ParameterError
from pipeline.utils import threads as thread_pools
from pipeline.utils.tagged import INFRASTRUCTURE_ERRORS


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    estimator_path: str  # "module:ClassName"
    seed_param: str | None = "random_state"
    threads_param: str | None = None
    defaults: tuple[tuple[str, Any], ...] = ()
    uses_history: bool = False  # a statistical model: fits on the target history (pipeline.models.statistical)
    exogenous: bool = False  # a statistical model that takes the feature columns as regressors (arimax)
    accepts_missing: bool = False  # fits and predicts with missing (NaN) feature values
    linear: bool = False  # predicts X @ coef_.T + intercept_ (`linear_predict`)

    def estimator_class(self):
        module, cls = self.estimator_path.split(":")
        return getattr(importlib.import_module(module), cls)


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("gbr", "sklearn.ensemble:GradientBoostingRegressor"),
        ModelSpec("hist_gbr", "sklearn.ensemble:HistGradientBoostingRegressor", accepts_missing=True),
        ModelSpec("random_forest", "sklearn.ensemble:RandomForestRegressor", threads_param="n_jobs",
                  accepts_missing=True),
        ModelSpec("ridge", "sklearn.linear_model:Ridge", seed_param=None, linear=True),
        ModelSpec("xgboost", "xgboost:XGBRegressor", threads_param="n_jobs", defaults=(("tree_method", "hist"),),
                  accepts_missing=True),
        *(ModelSpec(name, f"{cls.__module__}:{cls.__name__}", seed_param=None, uses_history=True,
                    exogenous=cls.exogenous)
          for name, cls in statistical.MODELS.items()),
    )
}


def members(name: str) -> list[tuple[str, ModelSpec | None]]:
    """Each member of the candidate `name` (a combination's, or the model itself) with its registry entry,
    None for a user model (package.module:callable): the one lookup the member-aware questions share."""
    return [(member, REGISTRY.get(member)) for member in combination.members(name)]


def uses_history(name: str) -> bool:
    """A statistical model, or a combination with one among its members: fits on the key's target history."""
    return any(spec is not None and spec.uses_history for _, spec in members(name))


def needs_features(name: str) -> bool:
    """Whether the model `name` needs at least one feature column to fit: a regressor does (every model
    here and every user model, package.module:callable), and so does a combination with one among its
    members; a model of the target history alone does not, unless it takes regressors (arimax)."""
    return any(spec is None or not spec.uses_history or spec.exogenous for _, spec in members(name))


def takes_regressors(name: str) -> bool:
    """A statistical model with exogenous regressors among `name`'s members (they must not all be generated
    from the target history: pipeline.models.statistical)."""
    return any(spec is not None and spec.exogenous for _, spec in members(name))


def accepts_missing(name: str) -> bool:
    """Whether the registry model `name` (every member of a combination) takes NaN feature values as
    missing (False for a user model); the others get them imputed."""
    return all(spec is not None and spec.accepts_missing for _, spec in members(name))


def group_seed(run_seed: int, key: str, window_start: int) -> int:
    """A seed that depends only on (run seed, key, window): stable across processes and orders."""
    digest = hashlib.sha256(f"{run_seed}\x1f{key}\x1f{window_start}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def make_estimator(name: str, params: dict, seed: int | None = None, threads: int = 1):
    """A fresh, unfitted estimator for one key x window."""
    return REGISTRY[name].estimator_class()(**estimator_settings(REGISTRY[name], params, seed, threads))


def estimator_settings(spec: ModelSpec, params: dict, seed: int | None, threads: int) -> dict:
    settings = dict(spec.defaults)
    if spec.threads_param:
        settings[spec.threads_param] = threads
    if spec.seed_param and seed is not None:
        settings[spec.seed_param] = seed
    settings.update(params)
    return settings


def check_model(name: str, params: dict) -> None:
    """Fails with a ParameterError unless `name` and `params` make an estimator that can fit.

    Unknown hyperparameters are caught by name; bad values by fitting a tiny
    synthetic problem, which is what the estimator itself would reject later.
    """
    if name not in REGISTRY:
        raise ParameterError("model", name, f"one of {', '.join(REGISTRY)}")
    if not params:
        # The registry's own settings need no check, and skipping it keeps scikit-learn (2 s to
        # import) out of the launching process, whose start-up every worker waits for.
        return
    spec = REGISTRY[name]
    if spec.uses_history:
        _check_statistical(spec, params)
        return
    known = set(spec.estimator_class()().get_params())
    unknown = sorted(set(params) - known)
    if unknown:
        raise ParameterError("model_params", params,
                             f"unknown hyperparameter(s) {unknown} for {spec.estimator_path}; "
                             f"known: {', '.join(sorted(known))}")
    rng = np.random.default_rng(0)
    features, target = rng.normal(size=(16, 2)), rng.normal(size=16)
    try:
        make_estimator(name, params, seed=0).fit(features, target).predict(features)
    except INFRASTRUCTURE_ERRORS:  # a full disk or exhausted memory is not a bad parameter
        raise
    except Exception as exc:  # the estimator's own validation message is the useful part
        raise ParameterError("model_params", params, f"{type(exc).__name__}: {exc}") from None


def _check_statistical(spec: ModelSpec, params: dict) -> None:
    known = spec.estimator_class().known_params()
    unknown = sorted(set(params) - known)
    if unknown:
        raise ParameterError("model_params", params,
                             f"unknown hyperparameter(s) {unknown} for {spec.name} (statsforecast "
                             f"{spec.estimator_class().statsforecast_class}); known: {', '.join(sorted(known))}")
    rng = np.random.default_rng(0)
    history = 10.0 + np.sin(np.arange(36) * np.pi / 2) + rng.normal(size=36) * 0.1
    steps, ahead = np.arange(36), np.arange(36, 40)
    if spec.exogenous:
        steps, ahead = statistical.inputs(steps, rng.normal(size=36)), statistical.inputs(ahead, rng.normal(size=4))
    try:
        spec.estimator_class()(season_length=4, **params).fit(steps, history).predict(ahead)
    except INFRASTRUCTURE_ERRORS:  # a full disk or exhausted memory is not a bad parameter
        raise
    except Exception as exc:  # statsforecast's own validation message is the useful part
        raise ParameterError("model_params", params, f"{type(exc).__name__}: {exc}") from None


def linear_predict(estimator):
    """A fitted linear model's predict without its input checks: X @ coef_.T + intercept_, what its own
    predict computes once it has validated X (the same numbers). For the recursive horizon, whose one-row
    calls (a dozen a window with lag_1) cost about 0.15 ms each in scikit-learn's checks and 3 us here; its
    inputs are the split's float matrices, imputed (stages.fit.split)."""
    coef, intercept = estimator.coef_, estimator.intercept_
    return lambda features: features @ coef.T + intercept


def fit_estimator(estimator, train_features, train_target, test_features,
                  threads: int | None = None, recursive_predict=None) -> tuple[np.ndarray, float, float]:
    """Fits `estimator` and predicts; returns (predictions, fit seconds, predict seconds).

    The one place an estimator is fitted: registry models, user estimator classes and the
    --group_timeout_s helper process all come through here. `threads`: every thread pool the fit
    and the prediction use, set on this thread now that the estimator's library is imported
    (pipeline.utils.threads). `recursive_predict(fitted estimator)`: the predict a recursive test set calls
    (default: the estimator's own).
    """
    import time

    if threads is not None:
        thread_pools.limit(threads)
    started = time.perf_counter()
    estimator.fit(train_features, train_target)
    fitted = time.perf_counter()
    # A callable test set predicts itself with the fitted model (the recursive horizon, stages.target_history).
    if callable(test_features):
        predicted = test_features(recursive_predict(estimator) if recursive_predict else estimator.predict)
    else:
        predicted = estimator.predict(test_features)
    predicted = np.asarray(predicted, dtype=float).reshape(-1)
    return predicted, fitted - started, time.perf_counter() - fitted


def fit_predict(spec: ModelSpec, params: dict, seed: int | None, threads: int, train_features: np.ndarray,
                train_target: np.ndarray, test_features: np.ndarray, keep_model: bool = False):
    """A fresh registry estimator fitted and used; returns (predictions, fit seconds, predict seconds,
    the fitted estimator when `keep_model` else None).

    Takes the spec rather than its name: a --group_timeout_s helper process receives it whole
    and needs no registry state of the parent (see pipeline.utils.deadline).
    """
    estimator = spec.estimator_class()(**estimator_settings(spec, params, seed, threads))
    return (*fit_estimator(estimator, train_features, train_target, test_features, threads,
                           linear_predict if spec.linear else None), estimator if keep_model else None)
