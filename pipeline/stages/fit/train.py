"""Train and predict: one model per key x window, the article's `learn_predict` generalised.

Input: the rows of one key in one sliding window (pipeline.stages.prepare.windows.CutWindows). Output, tagged:
- `predictions`: a DataFrame, one row per test date (predicted next to actual);
- `metrics`: one dict per trained key x window;
- `ledger`: one dict per planned key x window, trained, skipped or failed, with the reason.

No group can stop the run: a fit that raises, predicts NaN/inf or overruns
--group_timeout_s is a failed ledger row, and any other error for one group is
caught by Beam's exception handling and becomes a failed ledger row too.
"""

from __future__ import annotations

import dataclasses
import functools
import json

import apache_beam as beam
import numpy as np
import pandas as pd
from apache_beam.metrics import Metrics

from pipeline.io import artifacts
from pipeline.models import combination, custom_model
from pipeline.stages.fit import evaluate
from pipeline.stages.prepare import features, target_history
from pipeline.models import registry, statistical
from pipeline.utils import frozen, progress, threads
from pipeline.utils.tagged import GROUP_ERRORS, declare_outputs, reraise_infrastructure
from pipeline.utils.deadline import CallTimeout, DeadlineCaller, HelperCrashed
from pipeline.params.values import PipelineParams
from pipeline.stages.prepare.windows import WindowPlan

PREDICTIONS, METRICS, LEDGER = "predictions", "metrics", "ledger"
TRAINED, SKIPPED, FAILED = "trained", "skipped", "failed"
UNEXPECTED = "unexpected"


def fit_in_time(params: PipelineParams, model_params: dict, split: "WindowSplit", key: str, seed: int,
                deadline: DeadlineCaller | None) -> custom_model.Fitted:
    """Fits and predicts, in this process or in the deadline's helper process (which receives the
    model itself, registry entry or user spec, so it needs no state of this process).

    A combination (`a+b`, pipeline.models.combination) fits each member here as it would be fitted
    alone (same split and seed, its own hyperparameters) and predicts their mean."""
    if combination.is_combination(params.model):
        names = combination.members(params.model)
        fits = [fit_in_time(dataclasses.replace(params, model=name), combination.member_params(model_params, name),
                            split, key, seed, deadline) for name in names]
        estimators = [fit.estimator for fit in fits]
        return custom_model.Fitted(
            combination.mean_of([fit.predicted for fit in fits]), sum(fit.fit_seconds for fit in fits),
            sum(fit.predict_seconds for fit in fits),
            combination.MeanOfModels(names, estimators) if all(e is not None for e in estimators) else None)
    call = deadline.call if deadline is not None else _call_here
    return call(custom_model.fit_predict, params, custom_model.resolve(params.model), model_params,
                features.model_columns(params), split, key, seed)


def _call_here(function, *args):
    """DeadlineCaller.call's signature, in this process and without a time limit."""
    return function(*args)


class WindowSplit:
    """One key x window's rows in date order, cut into the training and the test periods.

    The frames are views made on first use; `arrays` gives the registry models their
    matrices from one conversion of the window, not one per frame.

    With target-history features (`target_features`), the test rows are predicted recursively
    (pipeline.stages.prepare.target_history.Recursion), and unknown values are imputed, for the models that
    take no missing value, with the training mean of the column (0.0 when the column has no known
    training value)."""

    def __init__(self, data: pd.DataFrame, time_column: str, test_start: int,
                 target_features: tuple = (), target: str | None = None):
        self.data, self._values, self._arrays = data, {}, {}
        self._target_features, self._target = list(target_features), target
        self.is_test = self.values(time_column) >= test_start
        self.rows_test = int(self.is_test.sum())
        self.rows_train = len(data) - self.rows_test
        # The usual layout: test periods last. Then both parts are slices, not copies.
        self._contiguous = not self.is_test[:self.rows_train].any()

    def _part(self, test: bool) -> pd.DataFrame:
        if self._contiguous:
            return self.data.iloc[self.rows_train:] if test else self.data.iloc[:self.rows_train]
        return self.data.loc[self.is_test if test else ~self.is_test]

    @functools.cached_property
    def train(self) -> pd.DataFrame:
        return self._part(test=False)

    @functools.cached_property
    def test(self) -> pd.DataFrame:
        return self._part(test=True)

    def values(self, name: str) -> np.ndarray:
        """The whole window's column as an array (cached: pandas column access is not free)."""
        if name not in self._values:
            self._values[name] = self.data[name].to_numpy()
        return self._values[name]

    def column(self, name: str, test: bool) -> np.ndarray:
        values = self.values(name)
        if self._contiguous:
            return values[self.rows_train:] if test else values[:self.rows_train]
        return values[self.is_test if test else ~self.is_test]

    def arrays(self, feature_columns: list[str], target: str, impute: bool = True) -> tuple:
        """(X train, y train, X test) as float arrays, column-major like pandas' own (tree learners
        scan columns); converted once per split (the search fits many configurations on one). With
        target-history features, "X test" is a RecursiveTest: called with the fitted model's predict,
        it predicts the test rows. `impute`: replace unknown values (else they stay NaN)."""
        cache_key = (tuple(feature_columns), target, impute)
        if cache_key not in self._arrays:
            x_train, y_train, x_test = self._convert(feature_columns, target)
            history = [feature_columns.index(f.name) for f in self._target_features]
            means = None
            if history and impute:
                known = ~np.isnan(x_train[:, history])
                sums = np.where(known, x_train[:, history], 0.0).sum(axis=0)
                means = np.where(known.any(axis=0), sums / np.maximum(known.sum(axis=0), 1), 0.0)
                x_train = x_train.copy(order="F")
                _fill(x_train, history, means)
            if history and self.rows_test:
                x_test = RecursiveTest(self.recursion, x_test, history, means)
            self._arrays[cache_key] = x_train, y_train, x_test
        return self._arrays[cache_key]

    @functools.cached_property
    def recursion(self) -> target_history.Recursion:
        """The test rows' target-history features as known at the cutoff, and how to predict them."""
        return target_history.Recursion.of([f for f in self._target_features], lambda name: self.column(name, True),
                                           self.column(self._target, test=True).astype(float))

    def unknown_values(self, feature_columns: list[str]) -> int:
        """Target-history values of the model's inputs that no known target or prediction gives (imputed
        for a model that takes no missing value)."""
        names = [f.name for f in self._target_features]
        if not names:
            return 0
        train = sum(int(np.isnan(self.column(name, test=False).astype(float)).sum()) for name in names)
        return train + (self.recursion.unknown() if self.rows_test else 0)

    def test_as_known(self) -> pd.DataFrame:
        """The test rows with their target-history features as known at the cutoff (NaN where unknown)."""
        if not self._target_features or not self.rows_test:
            return self.test
        names = [f.name for f in self._target_features]
        return self.test.assign(**dict(zip(names, self.recursion.values(np.arange(self.rows_test), None).T)))

    def _convert(self, feature_columns: list[str], target: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        def matrix(test: bool) -> np.ndarray:
            # Column by column: selecting a column list from the frame costs more than fitting a ridge.
            columns = [self.column(name, test) for name in feature_columns]
            out = np.empty((self.rows_test if test else self.rows_train, len(columns)), order="F")
            for position, values in enumerate(columns):
                out[:, position] = values
            return out

        return matrix(test=False), self.column(target, test=False).astype(float, copy=False), matrix(test=True)


def _fill(matrix: np.ndarray, columns: list[int], values: np.ndarray) -> None:
    """Unknown (NaN) entries of `columns` <- the column's value in `values`, in place."""
    part = matrix[:, columns]
    unknown = np.isnan(part)
    if unknown.any():
        matrix[:, columns] = np.where(unknown, values, part)


class RecursiveTest:
    """A split's test rows for a fitted model: `test(predict)` -> the predictions, made step by step
    (target_history.Recursion), unknown values imputed with `means` (None: left missing). Picklable:
    a --group_timeout_s helper process receives it with the split's matrices."""

    def __init__(self, recursion, matrix: np.ndarray, columns: list[int], means: np.ndarray | None):
        self.recursion, self.matrix, self.columns, self.means = recursion, matrix, columns, means

    def __call__(self, predict) -> np.ndarray:
        fill = (lambda m: _fill(m, self.columns, self.means)) if self.means is not None else (lambda m: None)
        return self.recursion.predict(predict, self.matrix, self.columns, fill)

    def framed(self, feature_columns: list[str]) -> "RecursiveTest":
        """The same, for an estimator that predicts from DataFrames of the feature columns."""
        return _FramedRecursiveTest(self, feature_columns)


class _FramedRecursiveTest:
    def __init__(self, test: RecursiveTest, feature_columns: list[str]):
        self._test, self._columns = test, feature_columns

    def __call__(self, predict) -> np.ndarray:
        return self._test(lambda matrix: predict(pd.DataFrame(matrix, columns=self._columns)))


class GroupResult:
    """What one key x window produced; plain data, easy to test without Beam. The predictions are
    kept as columns (arrays) and made a DataFrame on first use: a run whose predictions go straight
    to the sinks joins the columns of many windows into one frame instead (PredictionBuffer)."""

    def __init__(self, ledger: dict, prediction_columns: dict | None = None, metrics: dict | None = None):
        self.ledger, self.prediction_columns, self.metrics = ledger, prediction_columns, metrics

    @functools.cached_property
    def predictions(self) -> pd.DataFrame | None:
        if self.prediction_columns is None:
            return None
        return pd.DataFrame(self.prediction_columns, copy=False)


class PredictionBuffer:
    """The prediction columns of many key x windows, joined into one DataFrame of about `rows`
    rows: one frame (and one sink batch) per hundred windows instead of one per window, which
    cost more than fitting a small model."""

    def __init__(self, rows: int = 50_000):
        self._limit, self._parts, self.rows = rows, [], 0

    def add(self, columns: dict) -> pd.DataFrame | None:
        """Adds one window's columns; returns the joined frame once it holds `rows` rows."""
        self._parts.append(columns)
        self.rows += len(columns["predicted"])
        return self.take() if self.rows >= self._limit else None

    def take(self) -> pd.DataFrame | None:
        if not self._parts:
            return None
        parts, self._parts, self.rows = self._parts, [], 0
        return pd.DataFrame({name: np.concatenate([part[name] for part in parts]) for name in parts[0]},
                            copy=False)


def failure_reason(exc: Exception) -> str:
    if isinstance(exc, CallTimeout):
        return "timeout"
    if isinstance(exc, HelperCrashed):
        return "fit_crashed"
    if getattr(exc, "ledger_reason", None):  # an error that names its own reason (statistical.IrregularSeries)
        return exc.ledger_reason
    return "fit_error"


def split_at(data: pd.DataFrame, cutoff: int, params: PipelineParams) -> WindowSplit:
    """`data` (one key's rows in date order) cut at `cutoff`, with the run's target-history features."""
    return WindowSplit(data, params.time_column, cutoff, features.FeatureSpec.from_params(params).target_features,
                       params.target)


def split_window(key: str, window_start: int, window_data: pd.DataFrame, params: PipelineParams,
                 plan: WindowPlan, model_params: dict | None = None) -> tuple[WindowSplit, dict]:
    """(the window's split, ledger) of one key x window. The ledger's status is TRAINED while the
    group is eligible, else SKIPPED with its reason; plan-only mode applies the same rules.
    Test rows' target-history features: as known at the test start, then recursive (WindowSplit)."""
    time_column, date_column = params.time_column, params.date_column
    test_start = plan.test_start(window_start)
    if not window_data[date_column].is_monotonic_increasing:
        window_data = window_data.sort_values(date_column, kind="mergesort", ignore_index=True)
    split = split_at(window_data, test_start, params)
    periods = split.values(time_column)
    used = params.model_params if model_params is None else model_params
    ledger = {
        params.key_column: key, "window_start": window_start, "window_end": plan.end_of(window_start),
        "status": TRAINED, "reason": "", "rows_train": split.rows_train, "rows_test": split.rows_test,
        "fit_seconds": 0.0, "predict_seconds": 0.0, "error_class": "", "error_message": "",
        "model": params.model, "model_params": json.dumps(used, sort_keys=True), "run_id": params.run_id,
    }
    periods_present = len(np.unique(periods[periods >= window_start]))  # expanding: the earlier ones are extra
    train_target = split.column(params.target, test=False)
    if not len(window_data):  # key anchoring: a window that starts before the key's first period
        ledger.update(status=SKIPPED, reason="too_short_history",
                      error_message=f"the key's history starts after this window's start {window_start} "
                                    f"(window_anchor=key: its windows end at its own last period)")
    elif periods_present < plan.size:
        ledger.update(status=SKIPPED, reason="too_few_periods",
                      error_message=f"{periods_present} of {plan.size} periods present")
    elif split.rows_train < params.min_train_rows:
        ledger.update(status=SKIPPED, reason="too_few_rows",
                      error_message=f"{split.rows_train} training rows < {params.min_train_rows}")
    elif registry.uses_history(params.model) and (irregular := custom_model.irregularity(params, split)):
        ledger.update(status=SKIPPED, reason=statistical.IRREGULAR, error_message=irregular)
    elif not (train_target != train_target[:1]).any():
        # Every estimator would just echo the constant; the naive baseline already does that.
        ledger.update(status=SKIPPED, reason="constant_target",
                      error_message=f"all {split.rows_train} training targets equal {train_target[0]!r}")
    return split, ledger


def train_and_predict(key: str, window_start: int, window_data: pd.DataFrame, params: PipelineParams,
                      plan: WindowPlan, model_params: dict | None = None,
                      deadline: DeadlineCaller | None = None) -> GroupResult:
    """Fits the model on the training periods of one window and predicts its test periods.

    `model_params` replaces --model_params (the search passes the chosen configuration). With a
    `deadline`, fit and predict run in its helper process under --group_timeout_s.
    """
    time_column, date_column, target = params.time_column, params.date_column, params.target
    model_params = params.model_params if model_params is None else model_params
    test_start = plan.test_start(window_start)
    split, ledger = split_window(key, window_start, window_data, params, plan, model_params)
    if params.fallback_model:
        ledger.update(fitted_model=params.model, fallback="")
    seed = registry.group_seed(params.seed, key, window_start)
    if ledger["status"] == SKIPPED:
        if not may_fall_back(params, ledger["reason"], split):
            return GroupResult(ledger)
        fitted, ledger = fit_fallback(params, split, key, seed, deadline, ledger)
    else:
        try:
            fitted = fit_checked(params, model_params, split, key, seed, deadline)
        except Exception as exc:  # one group's failure must not stop the run; it is recorded instead
            reraise_infrastructure(exc)
            ledger = {**ledger, "status": FAILED, "reason": failure_reason(exc),
                      "error_class": getattr(exc, "class_name", type(exc).__name__),
                      "error_message": str(exc)[:1000]}
            if not may_fall_back(params, ledger["reason"], split):
                return GroupResult(ledger)
            fitted, ledger = fit_fallback(params, split, key, seed, deadline, ledger)
    if fitted is None:
        return GroupResult(ledger)
    predicted = fitted.predicted

    actual = split.column(target, test=True).astype(float)
    ledger.update(fit_seconds=fitted.fit_seconds, predict_seconds=fitted.predict_seconds)
    if custom_model.imputes(params.model):  # counted in summary.json (not an output column)
        ledger["feature_values_imputed"] = split.unknown_values(features.model_columns(params))
    baseline = evaluate.naive_baseline(  # training values only: never an earlier test period's actuals
        split.column(date_column, test=False), split.column(time_column, test=False),
        split.column(target, test=False).astype(float, copy=False),
        split.column(date_column, test=True), split.column(time_column, test=True))
    seasonal, scale = seasonal_baseline(params, split)
    window_end = plan.end_of(window_start)
    predictions = {
        params.key_column: np.full(len(actual), key, dtype=object),
        date_column: split.column(date_column, test=True),
        time_column: split.column(time_column, test=True),
        "window_start": np.full(len(actual), window_start, dtype=np.int64),
        "window_end": np.full(len(actual), window_end, dtype=np.int64),
        "predicted": predicted,
        "actual": actual,
        "baseline": baseline,
        "seasonal_naive": seasonal,
        "mase_scale": np.full(len(actual), np.nan if scale is None else scale),
        **(fitted.bands or {}),  # a statistical model's own intervals (--interval_method=model; stages.fit.intervals)
        "model": np.full(len(actual), params.model, dtype=object),
        **({"fitted_model": np.full(len(actual), ledger["fitted_model"], dtype=object),
            "fallback": np.full(len(actual), ledger["fallback"], dtype=object)} if params.fallback_model else {}),
    }  # run_id: set with the other lineage columns by the sinks
    metrics = {
        params.key_column: key, "window_start": window_start, "window_end": window_end,
        "test_start": test_start, "rows_train": split.rows_train, "rows_test": split.rows_test,
        **evaluate.regression_metrics(actual, predicted),
        "baseline_rmse": evaluate.rmse(actual, baseline),
        **evaluate.scaled_metrics(actual, predicted, scale),
        **{f"seasonal_naive_{name}": value
           for name, value in evaluate.scaled_metrics(actual, seasonal, scale).items()},
        "fit_seconds": ledger["fit_seconds"], "predict_seconds": ledger["predict_seconds"],
        "model": params.model, "model_params": ledger["model_params"], "run_id": params.run_id,
        **({name: ledger[name] for name in ("fitted_model", "fallback")} if params.fallback_model else {}),
    }
    if params.model_dir and hasattr(fitted.estimator, "get_params"):  # a user function has no model to save
        ledger["artifact_sha256"] = artifacts.save_model(fitted.estimator, params, plan, key, window_start, seed,
                                                         metrics, features.model_columns(params))
    return GroupResult(ledger, predictions, metrics)


def seasonal_baseline(params: PipelineParams, split: WindowSplit) -> tuple[np.ndarray, float | None]:
    """(seasonal naive of the test rows, MASE's scale) from the training rows, in steps of the key's
    frequency and --season_length (pipeline.stages.fit.evaluate)."""
    frequency, train_steps, test_steps = custom_model.history_steps(params, split)
    season = statistical.season_length(params.season_length, frequency)
    train_values = split.column(params.target, test=False).astype(float)
    return (evaluate.seasonal_naive(train_steps, train_values, test_steps, season),
            evaluate.seasonal_scale(train_steps, train_values, season))


# Why a candidate's key x window (or forecast) is fitted with --fallback_model instead: it failed, or it was
# skipped for too little history. A constant target is not among them (every model would echo it).
FALLBACK_REASONS = ("fit_error", "timeout", "fit_crashed", "too_few_periods", "too_few_rows")


def may_fall_back(params: PipelineParams, reason: str, split: WindowSplit) -> bool:
    return bool(params.fallback_model) and reason in FALLBACK_REASONS and split.rows_train > 0 and \
        split.rows_test > 0 and params.fallback_model != params.model


def fit_checked(params: PipelineParams, model_params: dict, split: WindowSplit, key: str, seed: int,
                deadline) -> custom_model.Fitted:
    """`fit_in_time`, with predictions that are not all finite an error."""
    fitted = fit_in_time(params, model_params, split, key, seed, deadline)
    if not np.isfinite(fitted.predicted).all():
        raise FloatingPointError("the model predicted NaN or infinite values")
    return fitted


def fit_fallback(params: PipelineParams, split: WindowSplit, key: str, seed: int, deadline, ledger: dict
                 ) -> tuple[custom_model.Fitted | None, dict]:
    """(the fallback's fit or None, the ledger row): trained with reason `fallback: <why>` and the
    candidate's error kept; failed (the original reason, both errors in the message) if the fallback fails."""
    why = ledger["reason"]
    try:
        fitted = fit_checked(dataclasses.replace(params, model=params.fallback_model), {}, split, key, seed,
                             deadline)
    except Exception as exc:  # recorded, as the candidate's own failure is
        reraise_infrastructure(exc)
        return None, {**ledger, "status": FAILED if ledger["status"] == FAILED else ledger["status"],
                      "error_message": f"{ledger['error_message'][:480]}; fallback {params.fallback_model} "
                                       f"failed too: {type(exc).__name__}: {str(exc)[:480]}"}
    return fitted, {**ledger, "status": TRAINED, "reason": f"fallback: {why}",
                    "fitted_model": params.fallback_model, "fallback": why}


def count_group(status: str) -> None:
    """Beam counters (visible in the Dataflow UI): planned = trained + skipped + failed."""
    Metrics.counter("groups", "groups_planned").inc()
    Metrics.counter("groups", f"groups_{status}").inc()
    progress.count(progress.DONE)  # a local run's progress display (nothing on Dataflow)


class TrainAndPredictFn(beam.DoFn):
    """Planned key x windows -> `handle(key, start, window_data)`; subclasses (the search) reuse the
    counters, the time limit and the tagged outputs.

    `frame_per_window`: one predictions DataFrame per key x window, for the stages that need them
    apart (intervals, model selection, forecasts); otherwise the windows' predictions are joined
    into larger frames (PredictionBuffer), emitted when full and when the bundle ends."""

    def __init__(self, params: PipelineParams, frame_per_window: bool = True):
        self._params = params
        self._plan = WindowPlan.from_params(params)
        self._deadline = None
        self._frame_per_window = frame_per_window
        self._buffer = None

    def setup(self):
        # --model_threads for the OpenMP/BLAS libraries this process loads from now on (scikit-learn
        # and XGBoost are imported at the first fit) and for the deadline's helper process; each fit
        # then sets the pools of its own thread (registry.fit_estimator, pipeline.utils.threads).
        threads.set_environment(self._params.model_threads)
        self._deadline = custom_model.time_limited_caller(self._params)
        if registry.uses_history(self._params.model):
            statistical.warm_up()  # statsforecast's imports and first calls, once per worker process, untimed
        # Imported modules live as long as the process: keep them out of every later collection.
        frozen.freeze_once()

    def teardown(self):
        if self._deadline is not None:
            self._deadline.stop()

    def start_bundle(self):
        self._buffer = None if self._frame_per_window else PredictionBuffer()

    def process(self, group):
        yield from self.handle(*group)

    def finish_bundle(self):
        progress.flush()
        rest = self._buffer.take() if self._buffer is not None else None
        if rest is not None:  # the key x windows are cut by the pipeline: every element is in the global window
            yield beam.pvalue.TaggedOutput(PREDICTIONS, beam.transforms.window.GlobalWindows.windowed_value(rest))

    def handle(self, key, start, window_data):
        yield from self.emit(train_and_predict(key, start, window_data, self._params, self._plan,
                                               deadline=self._deadline))

    def emit(self, result: GroupResult):
        count_group(result.ledger["status"])
        yield beam.pvalue.TaggedOutput(LEDGER, result.ledger)
        if result.prediction_columns is not None:
            full = result.predictions if self._buffer is None else self._buffer.add(result.prediction_columns)
            if full is not None:
                yield beam.pvalue.TaggedOutput(PREDICTIONS, full)
            yield beam.pvalue.TaggedOutput(METRICS, result.metrics)


class _UnexpectedErrorToLedger(beam.DoFn):
    """Beam's dead letters of the fit stage (errors outside the fit itself) -> failed ledger rows."""

    def __init__(self, params: PipelineParams):
        self._params = params
        self._plan = WindowPlan.from_params(params)

    def process(self, dead_letter):
        (key, start, window_data), (exc_class, exc_repr, _traceback) = dead_letter
        count_group(FAILED)
        yield unexpected_error_ledger(self._params, self._plan, key, start, len(window_data), exc_class, exc_repr)


def unexpected_error_ledger(params: PipelineParams, plan: WindowPlan, key: str, start: int, rows: int,
                            exc_class: type, exc_repr: str, model_params: dict | None = None) -> dict:
    """The failed ledger row of a key x window whose step broke outside the fit itself."""
    return {
        params.key_column: key, "window_start": start, "window_end": plan.end_of(start),
        "status": FAILED, "reason": "unexpected_error", "rows_train": None, "rows_test": None,
        "fit_seconds": 0.0, "predict_seconds": 0.0, "error_class": exc_class.__name__,
        "error_message": f"{exc_repr[:900]} ({rows} rows in the window)",
        "model": params.model,
        "model_params": json.dumps(params.model_params if model_params is None else model_params, sort_keys=True),
        "run_id": params.run_id,
    }


class TrainAndPredict(beam.PTransform):
    """(key, window start, the window's rows) -> predictions, metrics and the run ledger.

    A fit that raises is a failed ledger row (train_and_predict); anything else
    that raises for one group is caught by Beam's exception handling and becomes
    a failed ledger row too.
    """

    def __init__(self, params: PipelineParams, frame_per_window: bool = True):
        super().__init__()
        self._params, self._frame_per_window = params, frame_per_window

    def expand(self, windows):
        fit = declare_outputs(beam.ParDo(TrainAndPredictFn(self._params, self._frame_per_window)),
                              PREDICTIONS, METRICS, LEDGER)
        results = (windows
                   | "Fit" >> fit.with_exception_handling(main_tag="unused", dead_letter_tag=UNEXPECTED,
                                                           exc_class=GROUP_ERRORS)
                   .with_outputs(PREDICTIONS, METRICS, LEDGER))
        unexpected = results[UNEXPECTED] | "UnexpectedToLedger" >> beam.ParDo(
            _UnexpectedErrorToLedger(self._params))
        ledger = (results[LEDGER], unexpected) | "Ledger" >> beam.Flatten()
        return {PREDICTIONS: results[PREDICTIONS], METRICS: results[METRICS], LEDGER: ledger}
