"""Train and predict: one model per key x window, the article's `learn_predict` generalised.

Input: the grouped blocks of one key in one sliding window. Output, tagged:
- `predictions`: a DataFrame, one row per test date (predicted next to actual);
- `metrics`: one dict per trained key x window;
- `ledger`: one dict per planned key x window, trained, skipped or failed, with the reason.
"""

from __future__ import annotations

import time

import apache_beam as beam
import numpy as np
import pandas as pd
from apache_beam.metrics import Metrics

from pipeline import evaluate, models
from pipeline.options import PipelineParams
from pipeline.windows import WindowPlan

PREDICTIONS, METRICS, LEDGER = "predictions", "metrics", "ledger"
TRAINED, SKIPPED, FAILED = "trained", "skipped", "failed"


class GroupResult:
    """What one key x window produced; plain data, easy to test without Beam."""

    def __init__(self, ledger: dict, predictions: pd.DataFrame | None = None, metrics: dict | None = None):
        self.ledger, self.predictions, self.metrics = ledger, predictions, metrics


def train_and_predict(key: str, window_start: int, window_data: pd.DataFrame, params: PipelineParams,
                      plan: WindowPlan) -> GroupResult:
    """Fits the estimator on the training periods of one window and predicts its test periods."""
    time_column, date_column, target = params.time_column, params.date_column, params.target
    test_start = plan.test_start(window_start)
    # The window as numpy arrays sorted by date, built once: per-group pandas indexing
    # costs several times a small model's fit (see bench/ in the README).
    order = np.argsort(window_data[date_column].to_numpy(), kind="stable")
    dates = window_data[date_column].to_numpy()[order]
    periods = window_data[time_column].to_numpy()[order]
    features = np.column_stack([window_data[f].to_numpy(dtype=float) for f in params.features])[order]
    actuals = window_data[target].to_numpy(dtype=float)[order]
    is_test = periods >= test_start
    rows_test = int(is_test.sum())
    rows_train = len(dates) - rows_test
    ledger = {
        params.key_column: key, "window_start": window_start, "window_end": plan.end_of(window_start),
        "status": TRAINED, "reason": "", "rows_train": rows_train, "rows_test": rows_test,
        "fit_seconds": 0.0, "predict_seconds": 0.0, "error_class": "", "error_message": "",
        "model": params.model, "run_id": params.run_id,
    }
    periods_present = len(np.unique(periods))
    if periods_present < plan.size:
        return GroupResult({**ledger, "status": SKIPPED, "reason": "too_few_periods",
                            "error_message": f"{periods_present} of {plan.size} periods present"})
    if rows_train < params.min_train_rows:
        return GroupResult({**ledger, "status": SKIPPED, "reason": "too_few_rows",
                            "error_message": f"{rows_train} training rows < {params.min_train_rows}"})

    seed = models.group_seed(params.seed, key, window_start)
    try:
        estimator = models.make_estimator(params.model, params.model_params, seed=seed,
                                          threads=params.model_threads)
        started = time.perf_counter()
        estimator.fit(features[~is_test], actuals[~is_test])
        fitted = time.perf_counter()
        predicted = np.asarray(estimator.predict(features[is_test]), dtype=float)
        predicted_at = time.perf_counter()
        if not np.isfinite(predicted).all():
            raise FloatingPointError("the model predicted NaN or infinite values")
    except Exception as exc:  # one group's failure must not stop the run; it is recorded instead
        return GroupResult({**ledger, "status": FAILED, "reason": "fit_error",
                            "error_class": type(exc).__name__, "error_message": str(exc)[:1000]})

    actual = actuals[is_test]
    ledger.update(fit_seconds=fitted - started, predict_seconds=predicted_at - fitted)
    baseline = evaluate.naive_baseline(dates, periods, actuals, is_test)
    predictions = pd.DataFrame({
        params.key_column: key,
        date_column: dates[is_test],
        time_column: periods[is_test],
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
        "test_start": test_start, "rows_train": rows_train, "rows_test": rows_test,
        **evaluate.regression_metrics(actual, predicted),
        "baseline_rmse": evaluate.rmse(actual, baseline),
        "fit_seconds": ledger["fit_seconds"], "predict_seconds": ledger["predict_seconds"],
        "model": params.model, "run_id": params.run_id,
    }
    return GroupResult(ledger, predictions, metrics)


class _TrainAndPredictFn(beam.DoFn):
    def __init__(self, params: PipelineParams):
        self._params = params
        self._plan = WindowPlan.from_params(params)
        self._counters = {status: Metrics.counter("groups", f"groups_{status}")
                          for status in (TRAINED, SKIPPED, FAILED)}
        self._planned = Metrics.counter("groups", "groups_planned")

    def setup(self):
        from threadpoolctl import threadpool_limits

        # One BLAS/OpenMP thread per fit unless asked: every core already runs its own fits.
        self._thread_limit = threadpool_limits(limits=self._params.model_threads)

    def process(self, element, window=beam.DoFn.WindowParam, period_range=None):
        key, blocks = element
        start = self._plan.start_of(window)
        # A window hanging over the data's first or last period is not a group.
        if period_range is not None and self._plan.is_planned(start, *period_range):
            yield from self._train(key, start, blocks)

    def _train(self, key, start, blocks):
        self._planned.inc()
        blocks = list(blocks)
        window_data = pd.concat(blocks, ignore_index=True) if len(blocks) > 1 else blocks[0]
        result = train_and_predict(key, start, window_data, self._params, self._plan)
        self._counters[result.ledger["status"]].inc()
        yield beam.pvalue.TaggedOutput(LEDGER, result.ledger)
        if result.predictions is not None:
            yield beam.pvalue.TaggedOutput(PREDICTIONS, result.predictions)
            yield beam.pvalue.TaggedOutput(METRICS, result.metrics)


class TrainAndPredict(beam.PTransform):
    """(key, [blocks]) per sliding window -> predictions, metrics and the run ledger.

    `period_range` is a singleton side input (first, last) period of the data;
    windows outside it are not planned.
    """

    def __init__(self, params: PipelineParams, period_range):
        super().__init__()
        self._params, self._period_range = params, period_range

    def expand(self, grouped):
        return grouped | "Fit" >> beam.ParDo(
            _TrainAndPredictFn(self._params),
            period_range=beam.pvalue.AsSingleton(self._period_range),
        ).with_outputs(PREDICTIONS, METRICS, LEDGER)
