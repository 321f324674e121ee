"""Forecast the periods that have not happened (--forecast).

Rows to forecast: a key's rows whose target is null and whose period comes after the key's last period
with a target (pipeline.stages.prepare.rows; a null target inside the observed span is still rejected). Per key
with such rows:

- the model is the key's chosen model (several models: selection/, pipeline.stages.decide.select), or the only
  one; with --param_grid, the configuration that model chose in the key's last trained backtest window;
- it is trained on the key's last `window_size - test_periods` observed periods (as many as a backtest
  window trains on, ending at the last period with a target), with the same rules as a backtest window
  (every one of those periods present, --min_train_rows, a target that is not constant);
- seeded from (--seed, key, "forecast") (`registry.group_seed`), so the forecast does not depend on
  worker count or order;
- generated features of the rows to forecast are built as a test row's are: from the key's rows with
  every target at or after the first forecast period unknown (they are all unknown anyway);
- it predicts the rows to forecast -> forecasts/ (key, date, period, predicted, the interval bounds of
  --interval_levels, model, the training periods, lineage columns). With --model_dir the model is saved
  under <model_dir>[/<model>]/<run_id>/<key>/forecast/.

Each such key gets a ledger row (reason `forecast` when it was forecast, else `forecast_<why>`:
no_history, no_choice, no_configuration, too_few_periods, too_few_rows, constant_target, fit_error,
timeout, unexpected_error); summary.json counts them under `forecast`, apart from the backtest's key x
windows.
"""

from __future__ import annotations

import dataclasses
import json

import apache_beam as beam
import numpy as np
import pandas as pd

from pipeline.io.outputs import artifacts
from pipeline.models import registry
from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.stages.prepare import features
from pipeline.stages.fit import intervals, search, train
from pipeline.stages.fit.fitting import failure_reason, fit_checked
from pipeline.stages.fit.split import FAILED, SKIPPED, TRAINED, split_at
from pipeline.stages.decide import compare, select
from pipeline.utils import frames
from pipeline.utils.tagged import GROUP_ERRORS, reraise_infrastructure

FORECASTS = "forecasts"
SEED_LABEL = "forecast"

FORECAST_REASON = "forecast"  # ledger rows of the forecast (one per key with rows to forecast): reason forecast*


def is_enabled(params: PipelineParams) -> bool:
    return params.forecast


def check_params(params: PipelineParams) -> None:
    if params.forecast_table and not params.forecast:
        raise ParameterError("forecast_table", params.forecast_table, "empty unless forecast is true "
                             "(--forecast): without it there are no forecasts to write")


def add_forecasts(params: PipelineParams, outputs: dict, key_rows, future) -> dict:
    """The run's outputs with `forecasts` added and the forecast's ledger rows in `ledger`
    (pipeline.run.build, after the backtest and the selection)."""
    inputs = {"rows": key_rows, "future": future, "metrics": outputs[train.METRICS],
              "predictions": outputs[train.PREDICTIONS]}
    if select.SELECTION in outputs:
        inputs["selection"] = outputs[select.SELECTION]
    forecasted = inputs | "Forecast" >> Forecast(params)
    ledger = (outputs[train.LEDGER], forecasted[train.LEDGER]) | "LedgerWithForecast" >> beam.Flatten()
    return {FORECASTS: forecasted[FORECASTS], train.LEDGER: ledger}


class KeyForecast:
    """What one key's forecast produced: its ledger row and, when forecast, the forecast rows."""

    def __init__(self, ledger: dict, frame: pd.DataFrame | None = None, estimator=None, seed: int | None = None):
        self.ledger, self.frame, self.estimator, self.seed = ledger, frame, estimator, seed


def chosen_model(params: PipelineParams, selected: list[str]) -> str | None:
    """The key's forecast model: the only one, or the one selection/ chose (None: no choice)."""
    models = compare.model_names(params)
    if len(models) == 1:
        return models[0]
    return selected[0] if selected else None


def configuration(params: PipelineParams, metric_rows: list[dict]) -> dict | None:
    """The model's hyperparameters: --model_params, or with a grid the configuration chosen in the key's
    last trained backtest window of this model (None when it trained in none)."""
    if not search.is_enabled(params):
        return params.model_params
    rows = [row for row in metric_rows if row.get("model") == params.model and row.get("model_params")]
    if not rows:
        return None
    return json.loads(max(rows, key=lambda row: int(row["window_start"]))["model_params"])


def training_rows(observed: pd.DataFrame, params: PipelineParams) -> tuple[pd.DataFrame, range]:
    """The key's rows in its last `window_size - test_periods` observed periods, and those periods
    (--window_mode=expanding: every observed row; the span stays the periods that must be present)."""
    periods = observed[params.time_column]
    last = int(periods.max())
    span = range(last - params.train_periods + 1, last + 1)
    rows = observed if params.window_mode == "expanding" else observed.loc[periods >= span.start]
    return rows, span


def in_date_order(frame: pd.DataFrame, date_column: str) -> pd.DataFrame:
    """`frame` sorted by date (stable), with a fresh index; as it is when it already is (the usual case)."""
    if frame[date_column].is_monotonic_increasing:
        return frame.reset_index(drop=True)
    return frame.sort_values(date_column, kind="mergesort", ignore_index=True)


def future_features(observed: pd.DataFrame, future: pd.DataFrame, params: PipelineParams) -> pd.DataFrame:
    """Generated features of the rows to forecast, as a test row's: from the key's observed rows (their
    targets unknown), then predicted recursively (pipeline.stages.prepare.target_history)."""
    spec = features.FeatureSpec.from_params(params)
    future = in_date_order(future, params.date_column)
    if spec.calendar:
        future = features.add_calendar_features(future, spec, params.date_column)
    if spec.target_names:
        base = [params.time_column, params.date_column, params.target]
        combined = pd.concat([observed[base], future[base]], ignore_index=True)
        is_future = np.r_[np.zeros(len(observed), bool), np.ones(len(future), bool)]
        history = features.add_target_features(combined.assign(__future=is_future), spec, params)
        history = history.loc[history["__future"].to_numpy()]
        for name in spec.target_names + features.history_columns(params):
            future[name] = history[name].to_numpy()
    return future


def forecast_key(key: str, observed: pd.DataFrame | None, future: pd.DataFrame, selected: list[str],
                 metric_rows: list[dict], predictions: list[pd.DataFrame], params: PipelineParams,
                 deadline=None) -> KeyForecast:
    """One key's forecast (see the module docstring)."""
    periods = future[params.time_column].to_numpy()  # in any order: only its first, its last and its number
    ledger = {params.key_column: key, "window_start": None, "window_end": int(periods.max()), "status": SKIPPED,
              "reason": "", "rows_train": 0, "rows_test": len(future), "fit_seconds": 0.0,
              "predict_seconds": 0.0, "error_class": "", "error_message": "", "model": None,
              "model_params": None, "run_id": params.run_id}

    def skipped(why: str, message: str) -> KeyForecast:
        return KeyForecast({**ledger, "reason": f"{FORECAST_REASON}_{why}", "error_message": message})

    model = chosen_model(params, selected)
    if model is None:
        return skipped("no_choice", "several models and no window where every model trained: no choice")
    each = compare.params_for(params, model)
    model_params = configuration(each, metric_rows)
    ledger.update(model=model)
    if model_params is None:
        return skipped("no_configuration", f"{model} trained in no backtest window: no configuration chosen")
    ledger.update(model_params=json.dumps(model_params, sort_keys=True))
    if observed is None or not len(observed):
        return skipped("no_history", "no row with a target")
    rows, span = training_rows(observed, params)
    ledger.update(window_start=span.start, rows_train=len(rows))
    periods_present = rows[params.time_column].to_numpy()
    present = len(np.unique(periods_present[periods_present >= span.start]))
    target = rows[params.target].to_numpy(dtype=float)
    short = None  # too little history: the fallback's case, else a skip
    if present < len(span):
        short = ("too_few_periods", f"{present} of the last {len(span)} observed periods "
                                    f"({span.start}-{span.stop - 1}) present")
    elif len(rows) < params.min_train_rows:
        short = ("too_few_rows", f"{len(rows)} training rows < {params.min_train_rows}")
    elif not (target != target[:1]).any():
        return skipped("constant_target", f"all {len(rows)} training targets equal {target[0]!r}")
    attempts = [(each, model_params, "")]  # (parameters, hyperparameters, why not the candidate)
    fallback_ok = bool(params.fallback_model) and params.fallback_model != model and len(rows) > 0
    if short is not None:
        if not fallback_ok:
            return skipped(*short)
        attempts = [(dataclasses.replace(each, model=params.fallback_model), {}, short[0])]
        ledger.update(error_message=short[1])
    elif fallback_ok:
        attempts.append((dataclasses.replace(each, model=params.fallback_model), {}, None))  # why: the failure

    columns = [params.time_column, params.date_column, params.target, *features.model_columns(params),
               *features.history_columns(params)]
    to_predict = future_features(observed, future, params)
    data = frames.stack([rows, to_predict], columns)
    split = split_at(data, int(periods.min()), params)
    seed = registry.group_seed(params.seed, key, SEED_LABEL)
    failure, fitted, fitted_by, why = None, None, model, ""
    for fit_params, fit_model_params, reason in attempts:
        try:
            fitted = fit_checked(fit_params, fit_model_params, split, key, seed, deadline)
            fitted_by, why = fit_params.model, reason if reason is not None else failure["reason"]
            break
        except Exception as exc:  # one key's failure must not stop the run; it is recorded instead
            reraise_infrastructure(exc)
            failure = failure or {"reason": failure_reason(exc),
                                  "error_class": getattr(exc, "class_name", type(exc).__name__),
                                  "error_message": str(exc)[:1000]}
    if fitted is None:
        return KeyForecast({**ledger, "status": FAILED, **failure,
                            "reason": f"{FORECAST_REASON}_{failure['reason']}"})
    if failure is not None:
        ledger.update(error_class=failure["error_class"], error_message=failure["error_message"])
    ledger.update(status=TRAINED, reason=f"{FORECAST_REASON}_fallback: {why}" if why else FORECAST_REASON,
                  fit_seconds=fitted.fit_seconds, predict_seconds=fitted.predict_seconds)
    if params.fallback_model:
        ledger.update(fitted_model=fitted_by, fallback=why)
    n = len(to_predict)
    frame = pd.DataFrame({
        params.key_column: np.full(n, key, dtype=object),
        params.date_column: to_predict[params.date_column].to_numpy(),
        params.time_column: to_predict[params.time_column].to_numpy(),
        "predicted": fitted.predicted,
        "model": np.full(n, model, dtype=object),
        "train_start": np.full(n, span.start, dtype=np.int64),
        "train_end": np.full(n, span.stop - 1, dtype=np.int64),
        "rows_train": np.full(n, len(rows), dtype=np.int64),
        "model_params": np.full(n, ledger["model_params"], dtype=object),
        **({"fitted_model": np.full(n, fitted_by, dtype=object), "fallback": np.full(n, why, dtype=object)}
           if params.fallback_model else {}),
    })
    frame = intervals.add_forecast_bands(frame, predictions, model, params, fitted.bands)
    return KeyForecast(ledger, frame, fitted.estimator, seed)


class _ForecastKeyFn(train.TrainAndPredictFn):
    """Joined per key -> forecast rows and one ledger row; setup/teardown (thread limit, time limit)
    are the fit stage's."""

    def process(self, element):
        key, joined = element
        futures = list(joined["future"])
        if not futures:
            return
        future = pd.concat(futures, ignore_index=True) if len(futures) > 1 else futures[0]
        observed = next(iter(joined["rows"]), None)
        params = self._params
        try:
            result = forecast_key(key, observed, future, list(joined["selected"]), list(joined["metrics"]),
                                  list(joined.get("predictions", [])), params, self._deadline)
            if result.estimator is not None:
                each = compare.params_for(params, result.ledger["model"])
                if each.model_dir and hasattr(result.estimator, "get_params"):
                    result.ledger["artifact_sha256"] = artifacts.save_forecast_model(
                        result.estimator, each, key, result.seed, {
                            "train_periods": list(range(result.ledger["window_start"],
                                                        int(result.frame["train_end"].iloc[0]) + 1)),
                            "forecast_periods": sorted(set(result.frame[params.time_column].tolist())),
                            "model_params": json.loads(result.ledger["model_params"]),
                            "model_columns": features.model_columns(params)})
        except GROUP_ERRORS as exc:  # anything else for one key: its failed ledger row
            result = KeyForecast({params.key_column: key, "window_start": None, "window_end": None,
                                  "status": FAILED, "reason": f"{FORECAST_REASON}_unexpected_error",
                                  "rows_train": None, "rows_test": len(future), "fit_seconds": 0.0,
                                  "predict_seconds": 0.0, "error_class": type(exc).__name__,
                                  "error_message": repr(exc)[:1000], "model": None, "model_params": None,
                                  "run_id": params.run_id})
        yield beam.pvalue.TaggedOutput(train.LEDGER, result.ledger)
        if result.frame is not None:
            yield result.frame


class Forecast(beam.PTransform):
    """{"rows": (key, the key's rows with targets, generated features included), "future": (key, rows to
    forecast), "selection": selection rows (several models), "metrics": metric rows, "predictions":
    prediction frames} -> {"forecasts": forecast frames, "ledger": one ledger row per key to forecast}."""

    def __init__(self, params: PipelineParams):
        super().__init__()
        self._params = params

    def expand(self, inputs: dict):
        params = self._params
        key_column = params.key_column
        joined = {
            "rows": inputs["rows"], "future": inputs["future"],
            "metrics": inputs["metrics"] | "KeyMetrics" >> beam.Map(lambda row: (row[key_column], row)),
        }
        if params.interval_levels:  # the bands need the key's backtest residuals
            joined["predictions"] = inputs["predictions"] | "KeyPredictions" >> beam.Map(
                lambda frame: (frame[key_column].iloc[0], frame))
        if "selection" in inputs:
            joined["selected"] = (inputs["selection"]
                                  | "Chosen" >> beam.Filter(lambda row: row["chosen"])
                                  | "KeyChosen" >> beam.Map(lambda row: (row[key_column], row["model"])))
        else:
            joined["selected"] = inputs["future"].pipeline | "NoSelection" >> beam.Create([])
        results = (joined
                   | "JoinPerKey" >> beam.CoGroupByKey()
                   | "ForecastPerKey" >> beam.ParDo(_ForecastKeyFn(params)).with_outputs(
                       train.LEDGER, main=FORECASTS))
        return {FORECASTS: results[FORECASTS], train.LEDGER: results[train.LEDGER]}
