"""Train and predict: one model per key x window, the article's `learn_predict` generalised.

Input: the grouped blocks of one key in one sliding window. Output, tagged:
- `predictions`: a DataFrame, one row per test date (predicted next to actual);
- `metrics`: one dict per trained key x window;
- `ledger`: one dict per planned key x window, trained, skipped or failed, with the reason.

No group can stop the run: a fit that raises, predicts NaN/inf or overruns
--group_timeout_s is a failed ledger row, and any other error for one group is
caught by Beam's exception handling and becomes a failed ledger row too.
"""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pandas as pd
from apache_beam.metrics import Metrics

from pipeline import artifacts, custom_model, evaluate, features, models
from pipeline.deadline import CallTimeout, DeadlineCaller, HelperCrashed
from pipeline.options import PipelineParams
from pipeline.windows import WindowPlan

PREDICTIONS, METRICS, LEDGER = "predictions", "metrics", "ledger"
TRAINED, SKIPPED, FAILED = "trained", "skipped", "failed"
UNEXPECTED = "unexpected"


def _fit(params: PipelineParams, model_params: dict, train: pd.DataFrame, test: pd.DataFrame, key: str, seed: int,
         deadline: DeadlineCaller | None) -> custom_model.Fitted:
    """Fits and predicts, in this process or in the deadline's helper process.

    The helper gets the registry entry itself (not its name), so it needs no state of this process."""
    columns = features.model_columns(params)
    if deadline is None:
        return custom_model.fit_predict(params, model_params, columns, train, test, key, seed)
    if custom_model.is_user_model(params.model):
        return deadline.call(custom_model.fit_predict, params, model_params, columns, train, test, key, seed)
    predicted, fit_seconds, predict_seconds, estimator = deadline.call(
        models.fit_predict, models.REGISTRY[params.model], model_params, seed, params.model_threads,
        *custom_model.registry_arrays(params, columns, train, test), bool(params.model_dir))
    return custom_model.Fitted(predicted, fit_seconds, predict_seconds, estimator)


class GroupResult:
    """What one key x window produced; plain data, easy to test without Beam."""

    def __init__(self, ledger: dict, predictions: pd.DataFrame | None = None, metrics: dict | None = None):
        self.ledger, self.predictions, self.metrics = ledger, predictions, metrics


def failure_reason(exc: Exception) -> str:
    if isinstance(exc, CallTimeout):
        return "timeout"
    if isinstance(exc, HelperCrashed):
        return "fit_crashed"
    return "fit_error"


def split_window(key: str, window_start: int, window_data: pd.DataFrame, params: PipelineParams,
                 plan: WindowPlan, model_params: dict | None = None):
    """(window_data sorted, train, test, ledger) of one key x window. The ledger's status is TRAINED
    while the group is eligible, else SKIPPED with its reason; plan-only mode applies the same rules.
    Generated features of test rows are taken as of the test start (see features.as_of)."""
    time_column, date_column = params.time_column, params.date_column
    test_start = plan.test_start(window_start)
    window_data = window_data.sort_values(date_column, kind="mergesort", ignore_index=True)
    window_data = features.as_of(window_data, test_start, params)
    is_test = (window_data[time_column] >= test_start).to_numpy()
    train, test = window_data.loc[~is_test], window_data.loc[is_test]
    used = params.model_params if model_params is None else model_params
    ledger = {
        params.key_column: key, "window_start": window_start, "window_end": plan.end_of(window_start),
        "status": TRAINED, "reason": "", "rows_train": len(train), "rows_test": len(test),
        "fit_seconds": 0.0, "predict_seconds": 0.0, "error_class": "", "error_message": "",
        "model": params.model, "model_params": json.dumps(used, sort_keys=True), "run_id": params.run_id,
    }
    periods_present = window_data[time_column].nunique()
    if periods_present < plan.size:
        ledger.update(status=SKIPPED, reason="too_few_periods",
                      error_message=f"{periods_present} of {plan.size} periods present")
    elif len(train) < params.min_train_rows:
        ledger.update(status=SKIPPED, reason="too_few_rows",
                      error_message=f"{len(train)} training rows < {params.min_train_rows}")
    elif train[params.target].nunique() < 2:
        # Every estimator would just echo the constant; the naive baseline already does that.
        ledger.update(status=SKIPPED, reason="constant_target",
                      error_message=f"all {len(train)} training targets equal {train[params.target].iloc[0]!r}")
    return window_data, train, test, ledger


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
    window_data, train, test, ledger = split_window(key, window_start, window_data, params, plan, model_params)
    if ledger["status"] == SKIPPED:
        return GroupResult(ledger)

    seed = models.group_seed(params.seed, key, window_start)
    try:
        fitted = _fit(params, model_params, train, test, key, seed, deadline)
        predicted = fitted.predicted
        if not np.isfinite(predicted).all():
            raise FloatingPointError("the model predicted NaN or infinite values")
    except Exception as exc:  # one group's failure must not stop the run; it is recorded instead
        return GroupResult({**ledger, "status": FAILED, "reason": failure_reason(exc),
                            "error_class": getattr(exc, "class_name", type(exc).__name__),
                            "error_message": str(exc)[:1000]})

    actual = test[target].to_numpy(dtype=float)
    ledger.update(fit_seconds=fitted.fit_seconds, predict_seconds=fitted.predict_seconds)
    baseline = evaluate.naive_baseline(window_data[date_column].to_numpy(), window_data[time_column].to_numpy(),
                                       window_data[target].to_numpy(dtype=float),
                                       (window_data[time_column] >= test_start).to_numpy())
    predictions = pd.DataFrame({
        params.key_column: key,
        date_column: test[date_column].to_numpy(),
        time_column: test[time_column].to_numpy(),
        "window_start": window_start,
        "window_end": plan.end_of(window_start),
        "predicted": predicted,
        "actual": actual,
        "baseline": baseline,
        "model": params.model,
        "run_id": params.run_id,
    })
    metrics = {
        params.key_column: key, "window_start": window_start, "window_end": plan.end_of(window_start),
        "test_start": test_start, "rows_train": len(train), "rows_test": len(test),
        **evaluate.regression_metrics(actual, predicted),
        "baseline_rmse": evaluate.rmse(actual, baseline),
        "fit_seconds": ledger["fit_seconds"], "predict_seconds": ledger["predict_seconds"],
        "model": params.model, "model_params": ledger["model_params"], "run_id": params.run_id,
    }
    if params.model_dir and hasattr(fitted.estimator, "get_params"):  # a user function has no model to save
        artifacts.save_model(fitted.estimator, params, plan, key, window_start, seed, metrics)
    return GroupResult(ledger, predictions, metrics)


def count_group(status: str) -> None:
    """Beam counters (visible in the Dataflow UI): planned = trained + skipped + failed."""
    Metrics.counter("groups", "groups_planned").inc()
    Metrics.counter("groups", f"groups_{status}").inc()


class _PlannedGroups(beam.DoFn):
    """(key, [blocks]) in a sliding window -> (key, window start, [blocks]) for planned windows only."""

    def __init__(self, plan: WindowPlan):
        self._plan = plan

    def process(self, element, period_range, window=beam.DoFn.WindowParam):
        key, blocks = element
        start = self._plan.start_of(window)
        # A window hanging over the data's first or last period is not a group.
        if period_range is not None and self._plan.is_planned(start, *period_range):
            yield key, start, list(blocks)  # materialised: the next stage may run on another worker


class PlanGroups(beam.PTransform):
    """(key, [blocks]) per sliding window -> (key, window start, [blocks]) for the planned windows.

    A separate stage (not inside the fit) so that the fit's Beam exception handling sees plain
    elements that say which key x window they are."""

    def __init__(self, params: PipelineParams, period_range):
        super().__init__()
        self._params, self._period_range = params, period_range

    def expand(self, grouped):
        return grouped | "PlannedGroups" >> beam.ParDo(
            _PlannedGroups(WindowPlan.from_params(self._params)), beam.pvalue.AsSingleton(self._period_range))


class TrainAndPredictFn(beam.DoFn):
    """Planned key x windows -> `handle(key, start, window_data)`; subclasses (the search) reuse the
    counters, the time limit and the tagged outputs."""

    def __init__(self, params: PipelineParams):
        self._params = params
        self._plan = WindowPlan.from_params(params)
        self._deadline = None

    def setup(self):
        from threadpoolctl import threadpool_limits

        # One BLAS/OpenMP thread per fit unless asked: every core already runs its own fits.
        self._thread_limit = threadpool_limits(limits=self._params.model_threads)
        if self._params.group_timeout_s > 0:
            self._deadline = DeadlineCaller(self._params.group_timeout_s, self._params.model_threads)
            self._deadline.start()

    def teardown(self):
        if self._deadline is not None:
            self._deadline.stop()

    def process(self, group):
        key, start, blocks = group
        window_data = pd.concat(blocks, ignore_index=True) if len(blocks) > 1 else blocks[0]
        yield from self.handle(key, start, window_data)

    def handle(self, key, start, window_data):
        yield from self.emit(train_and_predict(key, start, window_data, self._params, self._plan,
                                               deadline=self._deadline))

    def emit(self, result: GroupResult):
        count_group(result.ledger["status"])
        yield beam.pvalue.TaggedOutput(LEDGER, result.ledger)
        if result.predictions is not None:
            yield beam.pvalue.TaggedOutput(PREDICTIONS, result.predictions)
            yield beam.pvalue.TaggedOutput(METRICS, result.metrics)


class _UnexpectedErrorToLedger(beam.DoFn):
    """Beam's dead letters of the fit stage (errors outside the fit itself) -> failed ledger rows."""

    def __init__(self, params: PipelineParams):
        self._params = params
        self._plan = WindowPlan.from_params(params)

    def process(self, dead_letter):
        (key, start, blocks), (exc_class, exc_repr, _traceback) = dead_letter
        rows = sum(len(block) for block in blocks)
        count_group(FAILED)
        yield {
            self._params.key_column: key, "window_start": start, "window_end": self._plan.end_of(start),
            "status": FAILED, "reason": "unexpected_error", "rows_train": None, "rows_test": None,
            "fit_seconds": 0.0, "predict_seconds": 0.0, "error_class": exc_class.__name__,
            "error_message": f"{exc_repr[:900]} ({rows} rows in the window)",
            "model": self._params.model, "model_params": json.dumps(self._params.model_params, sort_keys=True),
            "run_id": self._params.run_id,
        }


class TrainAndPredict(beam.PTransform):
    """(key, [blocks]) per sliding window -> predictions, metrics and the run ledger.

    `period_range` is a singleton side input (first, last) period of the data;
    windows outside it are not planned. A fit that raises is a failed ledger row
    (train_and_predict); anything else that raises for one group is caught by
    Beam's exception handling and becomes a failed ledger row too.
    """

    def __init__(self, params: PipelineParams, period_range):
        super().__init__()
        self._params, self._period_range = params, period_range

    def expand(self, grouped):
        planned = grouped | "PlanGroups" >> PlanGroups(self._params, self._period_range)
        results = (planned
                   | "Fit" >> beam.ParDo(TrainAndPredictFn(self._params))
                   .with_exception_handling(main_tag="unused", dead_letter_tag=UNEXPECTED)
                   .with_outputs(PREDICTIONS, METRICS, LEDGER))
        unexpected = results[UNEXPECTED] | "UnexpectedToLedger" >> beam.ParDo(
            _UnexpectedErrorToLedger(self._params))
        ledger = (results[LEDGER], unexpected) | "Ledger" >> beam.Flatten()
        return {PREDICTIONS: results[PREDICTIONS], METRICS: results[METRICS], LEDGER: ledger}
