"""Train and predict: one model per key x window, the article's `learn_predict` generalised.

Input: the rows of one key in one sliding window (pipeline.stages.prepare.windows.CutWindows). Output, tagged:
- `predictions`: a DataFrame, one row per test date (predicted next to actual);
- `metrics`: one dict per trained key x window;
- `ledger`: one dict per planned key x window, trained, skipped or failed, with the reason.

No group can stop the run: a fit that raises, predicts NaN/inf or overruns
--group_timeout_s is a failed ledger row, and any other error for one group is
caught by Beam's exception handling and becomes a failed ledger row too.

The parts: the window's split and eligibility (`split`), the recursive horizon (`recursive`), the fit
with its fallback (`fitting`), the emitted results (`results`); here, one window's outputs and the stage.
"""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pandas as pd
from apache_beam.metrics import Metrics

from pipeline.io.outputs import artifacts
from pipeline.models import model_fit, registry, statistical
from pipeline.params.values import PipelineParams
from pipeline.stages.fit import evaluate
from pipeline.stages.fit.fitting import fit_checked, fit_fallback, failure_reason, may_fall_back
from pipeline.stages.fit.results import GroupResult, PredictionBuffer
from pipeline.stages.fit.split import FAILED, SKIPPED, WindowSplit, split_window
from pipeline.stages.prepare import features
from pipeline.stages.prepare.windows import WindowPlan
from pipeline.utils import frozen, progress, threads
from pipeline.utils.deadline import DeadlineCaller
from pipeline.utils.tagged import GROUP_ERRORS, declare_outputs, reraise_infrastructure

PREDICTIONS, METRICS, LEDGER = "predictions", "metrics", "ledger"
UNEXPECTED = "unexpected"


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
    if model_fit.imputes(params.model):  # counted in summary.json (not an output column)
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
    frequency, train_steps, test_steps = model_fit.history_steps(params, split)
    season = statistical.season_length(params.season_length, frequency)
    train_values = split.column(params.target, test=False).astype(float)
    return (evaluate.seasonal_naive(train_steps, train_values, test_steps, season),
            evaluate.seasonal_scale(train_steps, train_values, season))


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
        self._deadline = model_fit.time_limited_caller(self._params)
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
