"""The best model per key, chosen honestly (several models: --model=a,b; --select_metric).

The choice: for each key, the model with the best (lowest) mean `--select_metric` (rmse, mae or mape,
from `metrics/`) over the backtest windows in which every candidate trained (and has a score);
ties go to the first model in --model's order. A key with no such window has no choice. Written to
`selection/`: one row per key x model with its mean score, the windows compared and `chosen`.

A choice scored on the windows it was chosen on flatters it, so the value of choosing is measured
out of sample too: for each backtest window W of a key in which every candidate trained, the model
is chosen (same rule) on the key's earlier such windows only -- windows whose test periods all end
before W's first test period, so no actual of W's test periods is used -- and that choice's
predictions are scored on W. A key's first window has nothing earlier and is not scored. On exactly
those key x windows, `summary.json`'s `model_comparison` gives per test period (pooled over keys,
from `predictions/`) the RMSE, MAE and MAPE of each single model, of the choice made this way, and
of the naive baseline, and how many keys chose each model on the full backtest.
"""

from __future__ import annotations

import math

import apache_beam as beam
import numpy as np
import pandas as pd

from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.stages import compare
from pipeline.stages.summary import _SumCounters
from pipeline.stages.windows import WindowPlan

SELECTION = "selection"
COMPARISON = "model_comparison"
METRICS = ("rmse", "mae", "mape")
CHOICE, BASELINE = "choice", "baseline"
# Per test period sums, for the model ("") and the baseline ("base_"): rows, squared and absolute
# errors, absolute percentage errors and the rows they are over (non-zero actuals).
_SUMS = ("n", "sse", "sae", "sape", "n_pct")


def check_params(params: PipelineParams) -> None:
    if params.selection_table and not compare.is_enabled(params):
        raise ParameterError("selection_table", params.selection_table,
                             "empty unless --model lists several models (a choice needs candidates)")


def period_sums(actual: np.ndarray, predicted: np.ndarray, periods: np.ndarray) -> dict:
    """{period: {sum name: value}} of one prediction frame."""
    error = predicted - actual
    nonzero = actual != 0
    ape = np.where(nonzero, np.abs(error) / np.where(nonzero, actual, 1.0), 0.0)
    out = {}
    for period in np.unique(periods).tolist():
        at = periods == period
        out[str(period)] = {"n": float(at.sum()), "sse": float((error[at] ** 2).sum()),
                            "sae": float(np.abs(error[at]).sum()), "sape": float(np.abs(ape[at]).sum()),
                            "n_pct": float((nonzero & at).sum())}
    return out


def prediction_sums(frame: pd.DataFrame, params: PipelineParams):
    """One predictions frame (a key x window x model) -> (key, (window, model, model sums, baseline sums))."""
    actual = frame["actual"].to_numpy(dtype=float)
    periods = frame[params.time_column].to_numpy()
    first = frame.iloc[0]
    return (first[params.key_column], (int(first["window_start"]), first["model"],
                                       period_sums(actual, frame["predicted"].to_numpy(dtype=float), periods),
                                       period_sums(actual, frame["baseline"].to_numpy(dtype=float), periods)))


def best(scores: dict[str, list[float]], models: list[str]) -> str | None:
    """The model with the lowest mean score (ties: the first in `models`); None without scores."""
    means = [(float(np.mean(scores[m])), position) for position, m in enumerate(models) if scores.get(m)]
    if len(means) < len(models):
        return None
    return models[min(means)[1]]


def comparable_windows(metric_rows: list[dict], models: list[str], metric: str) -> dict[int, dict[str, float]]:
    """{window start: {model: score}} for the windows where every candidate has a score."""
    by_window: dict[int, dict[str, float]] = {}
    for row in metric_rows:
        value = row.get(metric)
        if value is not None and math.isfinite(value):
            by_window.setdefault(int(row["window_start"]), {})[row["model"]] = float(value)
    return {start: scores for start, scores in sorted(by_window.items()) if set(scores) >= set(models)}


def choose(windows: dict[int, dict[str, float]], models: list[str]) -> str | None:
    return best({m: [scores[m] for scores in windows.values()] for m in models}, models) if windows else None


def select_key(key: str, metric_rows: list[dict], sums: list[tuple], params: PipelineParams,
               plan: WindowPlan) -> tuple[list[dict], dict]:
    """(selection rows, summary counters) of one key."""
    models, metric = compare.model_names(params), params.select_metric
    windows = comparable_windows(metric_rows, models, metric)
    chosen = choose(windows, models)
    rows = [{params.key_column: key, "model": model, "select_metric": metric,
             "score": float(np.mean([w[model] for w in windows.values()])) if windows else None,
             "windows_compared": len(windows), "chosen": model == chosen, "run_id": params.run_id}
            for model in models]
    counters: dict = {"keys": 1, **({"keys_choosing": {chosen: 1}} if chosen else {"keys_without_choice": 1})}
    by_window = {(start, model): (model_sums, base_sums) for start, model, model_sums, base_sums in sums}
    for start in windows:
        earlier = {s: scores for s, scores in windows.items() if plan.end_of(s) < plan.test_start(start)}
        choice = choose(earlier, models)
        if choice is None or any((start, m) not in by_window for m in models):
            continue
        counters["windows_scored"] = counters.get("windows_scored", 0) + 1
        labelled = [(m, by_window[(start, m)][0]) for m in models]
        labelled += [(CHOICE, by_window[(start, choice)][0]), (BASELINE, by_window[(start, models[0])][1])]
        for label, per_period in labelled:
            target = counters.setdefault("sums", {}).setdefault(label, {})
            for period, values in per_period.items():
                bucket = target.setdefault(period, {})
                for name in _SUMS:
                    bucket[name] = bucket.get(name, 0.0) + values[name]
    return rows, counters


def _scores(sums: dict) -> dict:
    return {"rmse": math.sqrt(sums["sse"] / sums["n"]) if sums["n"] else None,
            "mae": sums["sae"] / sums["n"] if sums["n"] else None,
            "mape": sums["sape"] / sums["n_pct"] if sums["n_pct"] else None}


def comparison_document(totals: dict, params: PipelineParams) -> dict:
    """summary.json's `model_comparison` from the summed counters of every key."""
    models = compare.model_names(params)
    labels = [*models, CHOICE, BASELINE]
    sums = totals.get("sums", {})
    periods = sorted({p for label in sums.values() for p in label}, key=int)
    by_period = {metric: {label: {} for label in labels} for metric in METRICS}
    overall = {metric: {} for metric in METRICS}
    for label in labels:
        for period in periods:
            for metric, value in _scores(sums.get(label, {}).get(period, dict.fromkeys(_SUMS, 0.0))).items():
                by_period[metric][label][period] = value
        pooled = {name: sum(sums.get(label, {}).get(p, {}).get(name, 0.0) for p in periods) for name in _SUMS}
        for metric, value in _scores(pooled).items():
            overall[metric][label] = value
    first = labels[0]
    return {
        "select_metric": params.select_metric, "models": models, "keys": totals.get("keys", 0),
        "keys_choosing": {m: totals.get("keys_choosing", {}).get(m, 0) for m in models},
        "keys_without_choice": totals.get("keys_without_choice", 0),
        "out_of_sample": {
            "method": "per key x window where every model trained: the model chosen on the key's earlier "
                      "windows only (test periods ending before this window's first test period), scored "
                      "on this window; every column on the same rows",
            "windows_scored": totals.get("windows_scored", 0),
            "rows_by_test_period": {p: int(sums.get(first, {}).get(p, {}).get("n", 0)) for p in periods},
            **{f"{metric}_by_test_period": by_period[metric] for metric in METRICS},
            "overall": overall,
        },
    }


class _SelectKeyFn(beam.DoFn):
    def __init__(self, params: PipelineParams):
        self._params, self._plan = params, WindowPlan.from_params(params)

    def process(self, element):
        key, joined = element
        rows, counters = select_key(key, list(joined["metrics"]), list(joined["sums"]), self._params, self._plan)
        yield from rows
        yield beam.pvalue.TaggedOutput(COMPARISON, counters)


class SelectModels(beam.PTransform):
    """{"metrics": metric rows, "predictions": prediction frames} of every model ->
    {"selection": lists of selection rows (one list per key), "model_comparison": one document}."""

    def __init__(self, params: PipelineParams):
        super().__init__()
        self._params = params

    def expand(self, inputs: dict):
        params = self._params
        key_column = params.key_column
        metrics = inputs["metrics"] | "KeyMetrics" >> beam.Map(lambda row: (row[key_column], row))
        sums = inputs["predictions"] | "PredictionSums" >> beam.Map(prediction_sums, params)
        selected = ({"metrics": metrics, "sums": sums}
                    | "JoinPerKey" >> beam.CoGroupByKey()
                    | "SelectPerKey" >> beam.ParDo(_SelectKeyFn(params)).with_outputs(COMPARISON, main=SELECTION))
        comparison = (selected[COMPARISON]
                      | "SumComparison" >> beam.CombineGlobally(_SumCounters())
                      | "ComparisonDocument" >> beam.Map(comparison_document, params))
        return {SELECTION: selected[SELECTION], COMPARISON: comparison}
