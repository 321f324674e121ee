"""Fitting any model, a registry entry or a user's (pipeline.models.custom_model), on one key x window's
split or one key's forecast rows: `fit_predict` is the one place a model is fitted, in this process or in
the --group_timeout_s helper process (`time_limited_caller`); the imports a run's models need are done once
per worker process, in the background from its first stage (`import_in_background`)."""

from __future__ import annotations

import dataclasses
import inspect
import threading
import time

import numpy as np
import pandas as pd

from pipeline.models import combination, custom_model, registry, statistical
from pipeline.params.values import PipelineParams
from pipeline.utils import periods, threads
from pipeline.utils.deadline import DeadlineCaller

MODEL_INTERVALS = "model"  # --interval_method: the statistical models' own intervals (pipeline.stages.fit.intervals)
PREDICTION_COLUMNS = ("predicted", "predict")  # a user function's DataFrame result: its predictions' column


@dataclasses.dataclass
class Fitted:
    predicted: np.ndarray
    fit_seconds: float
    predict_seconds: float
    estimator: object = None  # the fitted estimator (None for a user function)
    bands: dict | None = None  # the model's own intervals {lower_L, upper_L} (--interval_method=model)


def resolve(model: str) -> registry.ModelSpec | str:
    """What `fit_predict` takes: the registry's entry for a registry name, else the user spec itself."""
    return registry.REGISTRY.get(model) or model


def import_model(model: registry.ModelSpec | str) -> None:
    """Imports what fitting `model` needs (its estimator's library, or the user's module)."""
    if isinstance(model, registry.ModelSpec):
        model.estimator_class()
        if model.uses_history:
            statistical.warm_up()
    else:
        custom_model.load(model, check_allowed=False)


def imputes(model: str) -> bool:
    """Whether unknown feature values are imputed for `model` (registry models that take no missing value,
    user estimator classes; a combination when any member's are); a user function receives them as NaN."""
    return any(not spec.accepts_missing if spec is not None
               else inspect.isclass(custom_model.load(member, check_allowed=False))
               for member, spec in registry.members(model))


def import_models(*models: registry.ModelSpec | str) -> None:
    """Imports what fitting each of `models` needs (a combination's members)."""
    for model in models:
        import_model(model)


def run_models(params: PipelineParams) -> tuple[registry.ModelSpec | str, ...]:
    """Every model this run fits (`resolve`d): each member of each --model candidate, then --fallback_model."""
    names = [member for candidate in combination.candidates(params.model) for member in combination.members(candidate)]
    return tuple(resolve(name) for name in dict.fromkeys([*names, *filter(None, [params.fallback_model])]))


_background_import: threading.Thread | None = None


def import_in_background(params: PipelineParams) -> None:
    """Starts importing what the run's models need in a thread of this process (once per process), so that
    a worker pays those imports (statsforecast's: seconds) while it reads and validates rows and waits on
    the shuffles, not when its first fit starts; that fit then finds them imported, or waits for them."""
    global _background_import
    if _background_import is not None:
        return
    threads.set_environment(params.model_threads)  # before any OpenMP/BLAS library the models bring is loaded
    _background_import = threading.Thread(target=_import_quietly, args=run_models(params), daemon=True,
                                          name="import-models")
    _background_import.start()


def _import_quietly(*models) -> None:
    try:
        import_models(*models)
    except Exception:  # noqa: BLE001 - the fit imports again and records (or raises) the same error itself
        pass


def time_limited_caller(params: PipelineParams) -> DeadlineCaller | None:
    """The --group_timeout_s helper process for this run's model (None without a limit), started, with
    the model's imports done before the clock of any fit starts."""
    if params.group_timeout_s <= 0:
        return None
    caller = DeadlineCaller(params.group_timeout_s, params.model_threads, warmup=(import_models, run_models(params)))
    caller.start()
    return caller


def fit_predict(params: PipelineParams, model: registry.ModelSpec | str, model_params: dict,
                feature_columns: list[str], split, key: str, seed: int) -> Fitted:
    """Fits `model` (see `resolve`) on a split's training rows and predicts its test rows.

    `split` is a `pipeline.stages.fit.split.WindowSplit`: `arrays(...)` for estimators that take matrices
    (converted once per split), `train` / `test` frames for user models.
    """
    if isinstance(model, registry.ModelSpec) and model.uses_history:
        return _fit_statistical(params, model, model_params, feature_columns, split)
    if isinstance(model, registry.ModelSpec):
        predicted, fit_seconds, predict_seconds, estimator = registry.fit_predict(
            model, model_params, seed, params.model_threads,
            *split.arrays(feature_columns, params.target, impute=not registry.accepts_missing(model.name)),
            keep_model=bool(params.model_dir))  # a helper process sends the estimator back only when saved
        return Fitted(predicted, fit_seconds, predict_seconds, estimator)
    target = custom_model.load(model, check_allowed=False)  # allowed at launch; workers only import it
    if inspect.isclass(target):
        estimator = target(**model_params)
        if hasattr(estimator, "get_params") and "random_state" in estimator.get_params():
            estimator.set_params(random_state=seed)
        if hasattr(estimator, "get_params") and "n_jobs" in estimator.get_params() and "n_jobs" not in model_params:
            estimator.set_params(n_jobs=params.model_threads)  # scikit-learn's and XGBoost's thread count
        x_train, y_train, x_test = split.arrays(feature_columns, params.target)  # imputed: NaN support unknown
        x_test = x_test.framed(feature_columns) if callable(x_test) else pd.DataFrame(x_test, columns=feature_columns)
        return _fit_estimator(estimator, pd.DataFrame(x_train, columns=feature_columns), y_train, x_test,
                              threads=params.model_threads)
    # A function sees the test rows' target-history features as known at the cutoff (NaN where unknown):
    # it fits and predicts in one call, so no recursion; it handles missing values itself.
    train, test = split.train, split.test_as_known()
    columns = [params.key_column, params.time_column, params.date_column, params.target, *feature_columns]
    train_frame = train.assign(**{params.key_column: key})[columns].reset_index(drop=True)
    test_frame = test.assign(**{params.key_column: key, params.target: np.nan})[columns].reset_index(drop=True)
    extra = {"seed": seed} if "seed" in inspect.signature(target).parameters else {}
    # Libraries the function imports itself are sized by the environment (threads.set_environment).
    threads.limit(params.model_threads)
    started = time.perf_counter()
    result = target(train_frame, test_frame, **model_params, **extra)
    elapsed = time.perf_counter() - started
    return Fitted(_predictions(result, test_frame, params.date_column), elapsed, 0.0)


def history_steps(params: PipelineParams, split) -> tuple[str, np.ndarray, np.ndarray]:
    """(the key's frequency, the training rows' steps, the test rows' steps) of a split, for the
    statistical models (pipeline.models.statistical); worked out once per split."""
    return split.derived(("history_steps", params.date_column, params.frequency, params.period),
                         lambda: _history_steps(params, split))


def _history_steps(params: PipelineParams, split) -> tuple[str, np.ndarray, np.ndarray]:
    train_dates = split.column(params.date_column, test=False)
    frequency = statistical.key_frequency(params.frequency, params.period, train_dates)
    return (frequency, periods.steps(train_dates, frequency),
            periods.steps(split.column(params.date_column, test=True), frequency))


def irregularity(params: PipelineParams, split) -> str:
    """Why a split's training rows are no regular series for a statistical model ("" when they are one)."""
    return statistical.irregularity(history_steps(params, split)[1])


def _fit_statistical(params: PipelineParams, spec: registry.ModelSpec, model_params: dict,
                     feature_columns: list[str], split) -> Fitted:
    """A statistical model fitted on the split's training target in step order (and an exogenous model on
    its regressors), predicting its test rows; with --interval_method=model, its own intervals too."""
    frequency, train_inputs, test_inputs = history_steps(params, split)
    settings = {"season_length": statistical.season_length(params.season_length, frequency),
                "frequency": frequency, **model_params}
    estimator = spec.estimator_class()(**settings)
    if spec.exogenous:
        estimator.regressors = tuple(regressor_columns(params, feature_columns))
        train_inputs, test_inputs = (statistical.inputs(steps, np.column_stack(
            [split.column(name, test).astype(float) for name in estimator.regressors]))
            for steps, test in ((train_inputs, False), (test_inputs, True)))
    fitted = _fit_estimator(estimator, train_inputs, split.column(params.target, test=False).astype(float),
                            test_inputs, threads=params.model_threads)
    if params.interval_method == MODEL_INTERVALS and params.interval_levels:
        started = time.perf_counter()
        fitted.bands = estimator.bands(test_inputs, params.interval_levels)
        fitted.predict_seconds += time.perf_counter() - started
    return fitted


def regressor_columns(params: PipelineParams, feature_columns: list[str]) -> list[str]:
    """An exogenous statistical model's regressors: the model columns known in the future, the input's
    features and the calendar features (not those generated from the target history, pipeline.models.statistical)."""
    known = {*params.features, *params.calendar_features}
    return [name for name in feature_columns if name in known]


def _fit_estimator(estimator, x_train, y_train, x_test, threads: int | None = None) -> Fitted:
    return Fitted(*registry.fit_estimator(estimator, x_train, y_train, x_test, threads), estimator)


def _predictions(result, test: pd.DataFrame, date_column: str) -> np.ndarray:
    """The user function's result as one float per test row, in the test frame's order."""
    if isinstance(result, list) and result and isinstance(result[0], dict):
        result = pd.DataFrame(result)
    if isinstance(result, pd.DataFrame):
        column = next((c for c in PREDICTION_COLUMNS if c in result.columns), None)
        if column is None:
            raise ValueError(f"the model returned a DataFrame without a {' or '.join(PREDICTION_COLUMNS)} column")
        if date_column in result.columns:
            by_date = pd.Series(result[column].to_numpy(dtype=float),
                                index=pd.to_datetime(result[date_column]))
            if by_date.index.has_duplicates:
                raise ValueError("the model returned several predictions for one date")
            predicted = by_date.reindex(pd.to_datetime(test[date_column])).to_numpy(dtype=float)
            if np.isnan(predicted).any():
                raise ValueError(f"the model returned no prediction for {int(np.isnan(predicted).sum())} test dates")
            return predicted
        result = result[column]
    predicted = np.asarray(result, dtype=float).reshape(-1)
    if len(predicted) != len(test):
        raise ValueError(f"the model returned {len(predicted)} predictions for {len(test)} test rows")
    return predicted
