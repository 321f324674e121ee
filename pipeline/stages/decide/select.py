"""The model each key keeps, chosen honestly (several candidates: --model=a,b,a+b; --select; --select_metric).

A key's evidence: its backtest windows in which every candidate trained and has a `--select_metric` score
(rmse, mae, mape, mase, smape or wape, from `metrics/`). The rule, --select=per_key|global|auto, is in
pipeline.stages.decide.selection_rules: the key's own best, the best over every key's windows, or (auto, the
default) the global choice unless the key's own evidence is strong. A key with no such window keeps the
global choice under `global` and `auto`, and has no choice under `per_key`. Written to `selection/`: one row
per key x model with its mean score, the windows compared, `chosen`, the rule (`select_rule`) and what
decided the key (`chosen_by`: `key` or `global`).

A choice scored on the windows it was chosen on flatters it, so the value of choosing is measured out of
sample, for every rule: for each comparable window W of a key, each rule chooses on windows whose test
periods all end before W's first test period (the key's own for `per_key`; every key's for `global`; both
for `auto`), so no actual of W's test periods is used, and that choice's predictions are scored on W. A
key's first window has nothing earlier and is not scored. On exactly those key x windows, `summary.json`'s
`model_comparison` gives per test period (pooled over keys, from `predictions/`) the RMSE, MAE, MAPE, MASE,
sMAPE and WAPE of each single model, of each rule's choice made this way (`choice_per_key`, `choice_global`, `choice_auto`),
and of the naive baseline, and how many keys chose each model on the full backtest under the run's rule.

The scale-free metrics are pooled over rows as summary.json pools them (pipeline.stages.record.summary):
MASE the mean of |error| / the row's window scale over the rows that have a scale (each window's MASE,
weighted by its rows: the competitions' mean of per-series MASE when every window has the same horizon;
a sum |e| / sum scale would let the keys of large scale decide), sMAPE the mean of its terms, WAPE
sum |error| / sum |actual|. The choice itself averages the per-window scores of metrics/, so every key x
window weighs alike whatever its scale.
"""

from __future__ import annotations

import math

import apache_beam as beam
import numpy as np
import pandas as pd

from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.stages.decide import compare
from pipeline.stages.decide import selection_rules as rules
from pipeline.stages.fit import evaluate
from pipeline.utils.counters import SumCounters

SELECTION = "selection"
COMPARISON = "model_comparison"
METRICS = ("rmse", "mae", "mape", "mase", "smape", "wape")
BASELINE = "baseline"
CHOICES = {rule: f"choice_{rule}" for rule in rules.RULES}  # the out-of-sample label of each rule's choice
# Per test period sums of one prediction frame: rows, squared and absolute errors, absolute percentage
# errors and the rows they are over (non-zero actuals), absolute errors over MASE's scale and the rows
# that have one, sMAPE terms, absolute actuals.
_SUMS = ("n", "sse", "sae", "sape", "n_pct", "sase", "n_scaled", "ssmape", "sabs")


def check_params(params: PipelineParams) -> None:
    if params.selection_table and not compare.is_enabled(params):
        raise ParameterError("selection_table", params.selection_table,
                             "empty unless --model lists several models (a choice needs candidates)")
    if params.select not in rules.RULES:
        raise ParameterError("select", params.select, f"one of {', '.join(rules.RULES)}")


def period_sums(actual: np.ndarray, predicted: np.ndarray, periods: np.ndarray, scale: np.ndarray) -> dict:
    """{period: {sum name: value}} of one prediction frame (`scale`: each row's MASE scale, NaN: none)."""
    error = predicted - actual
    nonzero = actual != 0
    ape = np.where(nonzero, np.abs(error) / np.where(nonzero, actual, 1.0), 0.0)
    scaled = np.isfinite(scale) & (scale > 0)
    ase = np.where(scaled, np.abs(error) / np.where(scaled, scale, 1.0), 0.0)
    smape = evaluate.smape_terms(actual, predicted)
    out = {}
    for period in np.unique(periods).tolist():
        at = periods == period
        out[str(period)] = {"n": float(at.sum()), "sse": float((error[at] ** 2).sum()),
                            "sae": float(np.abs(error[at]).sum()), "sape": float(np.abs(ape[at]).sum()),
                            "n_pct": float((nonzero & at).sum()), "sase": float(ase[at].sum()),
                            "n_scaled": float((scaled & at).sum()), "ssmape": float(smape[at].sum()),
                            "sabs": float(np.abs(actual[at]).sum())}
    return out


def prediction_sums(frame: pd.DataFrame, params: PipelineParams):
    """One predictions frame (a key x window x model) -> (key, (window, model, model sums, baseline sums))."""
    actual = frame["actual"].to_numpy(dtype=float)
    periods = frame[params.time_column].to_numpy()
    scale = (frame["mase_scale"] if "mase_scale" in frame else pd.Series(np.nan, index=frame.index)).to_numpy(float)
    first = frame.iloc[0]
    return (first[params.key_column], (int(first["window_start"]), first["model"],
                                       period_sums(actual, frame["predicted"].to_numpy(dtype=float), periods, scale),
                                       period_sums(actual, frame["baseline"].to_numpy(dtype=float), periods, scale)))


def comparable_windows(metric_rows: list[dict], models: list[str], metric: str
                       ) -> tuple[dict[int, dict[str, float]], dict[int, tuple[int, int]]]:
    """({window start: {model: score}} for the windows where every candidate has a score,
    {window start: (window end, first test period)})."""
    by_window: dict[int, dict[str, float]] = {}
    bounds: dict[int, tuple[int, int]] = {}
    for row in metric_rows:
        value = row.get(metric)
        if value is not None and math.isfinite(value):
            start = int(row["window_start"])
            by_window.setdefault(start, {})[row["model"]] = float(value)
            bounds[start] = (int(row["window_end"]), int(row["test_start"]))
    windows = {start: scores for start, scores in sorted(by_window.items()) if set(scores) >= set(models)}
    return windows, {start: bounds[start] for start in windows}


def key_evidence(element, params: PipelineParams) -> dict:
    """(key, joined) -> the key's part of the pooled evidence (selection_rules.evidence)."""
    windows, bounds = comparable_windows(list(element[1]["metrics"]), compare.model_names(params),
                                         params.select_metric)
    return rules.evidence(windows, {start: end for start, (end, _) in bounds.items()})


def select_key(key: str, metric_rows: list[dict], sums: list[tuple], params: PipelineParams,
               pooled: dict) -> tuple[list[dict], dict]:
    """(selection rows, summary counters) of one key; `pooled`: every key's evidence, summed."""
    models, metric = compare.model_names(params), params.select_metric
    windows, bounds = comparable_windows(metric_rows, models, metric)
    chosen, chosen_by = rules.rule_choice(params.select, windows, models, rules.global_choice(pooled, models))
    rows = [{params.key_column: key, "model": model, "select_metric": metric,
             "score": float(np.mean([w[model] for w in windows.values()])) if windows else None,
             "windows_compared": len(windows), "chosen": model == chosen, "select_rule": params.select,
             "chosen_by": chosen_by if chosen else None, "run_id": params.run_id}
            for model in models]
    counters: dict = {"keys": 1, **({"keys_choosing": {chosen: 1}, "keys_chosen_by": {chosen_by: 1}}
                                    if chosen else {"keys_without_choice": 1})}
    by_window = {(start, model): (model_sums, base_sums) for start, model, model_sums, base_sums in sums}
    for start in windows:
        test_start = bounds[start][1]
        earlier = {s: scores for s, scores in windows.items() if bounds[s][0] < test_start}
        before = rules.global_choice(pooled, models, before=test_start)
        picks = {rule: rules.rule_choice(rule, earlier, models, before)[0] for rule in rules.RULES}
        if None in picks.values() or any((start, m) not in by_window for m in models):
            continue
        counters["windows_scored"] = counters.get("windows_scored", 0) + 1
        labelled = [(m, by_window[(start, m)][0]) for m in models]
        labelled += [(CHOICES[rule], by_window[(start, pick)][0]) for rule, pick in picks.items()]
        labelled.append((BASELINE, by_window[(start, models[0])][1]))
        for label, per_period in labelled:
            target = counters.setdefault("sums", {}).setdefault(label, {})
            for period, values in per_period.items():
                bucket = target.setdefault(period, {})
                for name, value in values.items():
                    bucket[name] = bucket.get(name, 0.0) + value
    return rows, counters


def _scores(sums: dict) -> dict:
    def ratio(top: str, bottom: str):
        return sums.get(top, 0.0) / sums[bottom] if sums.get(bottom) else None

    return {"rmse": math.sqrt(sums["sse"] / sums["n"]) if sums["n"] else None,
            "mae": ratio("sae", "n"), "mape": ratio("sape", "n_pct"), "mase": ratio("sase", "n_scaled"),
            "smape": ratio("ssmape", "n"), "wape": ratio("sae", "sabs")}


def comparison_document(totals: dict, params: PipelineParams) -> dict:
    """summary.json's `model_comparison` from the summed counters of every key."""
    models = compare.model_names(params)
    labels = [*models, *CHOICES.values(), BASELINE]
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
        "select_metric": params.select_metric, "select": params.select, "models": models,
        "keys": totals.get("keys", 0),
        "keys_choosing": {m: totals.get("keys_choosing", {}).get(m, 0) for m in models},
        "keys_chosen_by": {by: totals.get("keys_chosen_by", {}).get(by, 0) for by in (rules.BY_KEY, rules.BY_GLOBAL)},
        "keys_without_choice": totals.get("keys_without_choice", 0),
        "out_of_sample": {
            "method": "per key x window where every model trained: each rule's choice made on windows whose "
                      "test periods end before this window's first test period (per_key: the key's own; "
                      "global: every key's; auto: both), scored on this window; every column on the same rows",
            "windows_scored": totals.get("windows_scored", 0),
            "rows_by_test_period": {p: int(sums.get(first, {}).get(p, {}).get("n", 0)) for p in periods},
            **{f"{metric}_by_test_period": by_period[metric] for metric in METRICS},
            "overall": overall,
        },
    }


class _SelectKeyFn(beam.DoFn):
    def __init__(self, params: PipelineParams):
        self._params = params

    def process(self, element, pooled):
        key, joined = element
        rows, counters = select_key(key, list(joined["metrics"]), list(joined["sums"]), self._params, pooled)
        yield from rows
        yield beam.pvalue.TaggedOutput(COMPARISON, counters)


class SelectModels(beam.PTransform):
    """{"metrics": metric rows, "predictions": prediction frames} of every model ->
    {"selection": selection rows, "model_comparison": one document}. Two passes over the keys: their
    evidence summed (small: models x distinct window ends), then each key's choice with it as a side input."""

    def __init__(self, params: PipelineParams):
        super().__init__()
        self._params = params

    def expand(self, inputs: dict):
        params = self._params
        key_column = params.key_column
        metrics = inputs["metrics"] | "KeyMetrics" >> beam.Map(lambda row: (row[key_column], row))
        sums = inputs["predictions"] | "PredictionSums" >> beam.Map(prediction_sums, params)
        joined = {"metrics": metrics, "sums": sums} | "JoinPerKey" >> beam.CoGroupByKey()
        pooled = (joined
                  | "KeyEvidence" >> beam.Map(key_evidence, params)
                  | "PoolEvidence" >> beam.CombineGlobally(SumCounters()))
        selected = joined | "SelectPerKey" >> beam.ParDo(
            _SelectKeyFn(params), beam.pvalue.AsSingleton(pooled)).with_outputs(COMPARISON, main=SELECTION)
        comparison = (selected[COMPARISON]
                      | "SumComparison" >> beam.CombineGlobally(SumCounters())
                      | "ComparisonDocument" >> beam.Map(comparison_document, params))
        return {SELECTION: selected[SELECTION], COMPARISON: comparison}
