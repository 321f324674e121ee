"""The run summary, computed inside the pipeline and written as summary.json under --output.

Computed in the pipeline (not from the runner's metrics afterwards) so that it
exists for template launches too, where the launcher never sees the job's
result. Other tools read these names: rows_read, rows_used, rows_rejected,
groups_planned, groups_trained, groups_skipped, groups_failed.
"""

from __future__ import annotations


import math

import apache_beam as beam
import numpy as np
import pandas as pd

from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.io.warehouse.bigquery import OUTPUT_TABLE_PARAMS
from pipeline.io.publishing.results import finite_json, write_json
from pipeline.io.outputs.sinks import SUMMARY_FILE, staging_path
from pipeline.stages.fit import evaluate
from pipeline.stages.prepare.fingerprint import input_fingerprint
from pipeline.stages.decide.forecast import FORECAST_REASON
from pipeline.utils.counters import SumCounters




def ledger_counters(row: dict) -> dict:
    status, reason = row["status"], row["reason"]
    if str(reason).startswith(FORECAST_REASON):  # --forecast: counted apart from the backtest's key x windows
        return {"forecast_keys": 1, f"forecast_keys_{status}": 1,
                **({f"forecast_{status}_by_reason": {reason: 1}} if status != "trained" else {})}
    counters = {"groups_planned": 1, f"groups_{status}": 1}
    if row.get("feature_values_imputed"):  # not an output column: the summary's count (pipeline.stages.fit.train)
        counters["feature_values_imputed"] = row["feature_values_imputed"]
    if status != "trained" or reason:  # a trained row with a reason: fitted by --fallback_model
        counters[f"{status}_by_reason"] = {reason: 1}
    return counters


def prediction_counters(frame: pd.DataFrame, time_column: str) -> dict:
    """Sums of squared errors per test period, for the model and the naive baseline.

    numpy rather than a pandas groupby: this runs once per trained key x window, and a
    named-aggregation groupby costs about as much as fitting a small model.
    """
    periods, group = np.unique(frame[time_column].to_numpy(), return_inverse=True)
    actual = frame["actual"].to_numpy(dtype=float)
    squared = {"sse": (frame["predicted"].to_numpy(dtype=float) - actual) ** 2,
               "base_sse": (frame["baseline"].to_numpy(dtype=float) - actual) ** 2}
    squared.update(scaled_error_terms(frame, actual))
    sums = {"n": np.bincount(group, minlength=len(periods)).astype(float)}
    sums.update({stat: np.bincount(group, weights=np.nan_to_num(values, nan=0.0), minlength=len(periods))
                 for stat, values in squared.items()})
    labels = [str(p) for p in periods.tolist()]
    return {f"period_{stat}": dict(zip(labels, totals.tolist())) for stat, totals in sums.items()}


# Per row, for the model and seasonal naive: |e| / MASE's scale, the sMAPE term, |e|; and |y|, and
# whether the row has a scale (summed per test period: pooled MASE, sMAPE and WAPE, see `scaled_summary`).
_SCALED_SOURCES = (("", "predicted"), ("snaive_", "seasonal_naive"))


def scaled_error_terms(frame: pd.DataFrame, actual: np.ndarray) -> dict:
    if "seasonal_naive" not in frame:
        return {}
    scale = frame["mase_scale"].to_numpy(dtype=float)
    scaled = np.isfinite(scale) & (scale > 0)
    terms = {"abs_actual": np.abs(actual), "n_scaled": scaled.astype(float)}
    for prefix, column in _SCALED_SOURCES:
        predicted = frame[column].to_numpy(dtype=float)
        absolute = np.abs(predicted - actual)
        terms[f"{prefix}sae"] = absolute
        terms[f"{prefix}sase"] = np.where(scaled, absolute / np.where(scaled, scale, 1.0), 0.0)
        terms[f"{prefix}ssmape"] = evaluate.smape_terms(actual, predicted)
    return terms


def scaled_summary(totals: dict) -> dict:
    """summary.json's MASE, sMAPE and WAPE of the model and of seasonal naive, per test period and
    overall, pooled over rows (MASE: the mean of |e| / the row's window scale over rows with a scale)."""
    sums = {stat: totals.get(f"period_{stat}", {}) for stat in
            ("n", "n_scaled", "abs_actual", *(f"{p}{s}" for p, _ in _SCALED_SOURCES for s in ("sae", "sase", "ssmape")))}
    periods = sorted(sums["n"], key=int)

    def ratio(top: str, bottom: str, period_list, times: float = 1.0):
        numerator = sum(sums[top].get(p, 0.0) for p in period_list)
        denominator = sum(sums[bottom].get(p, 0.0) for p in period_list)
        return numerator / denominator * times if denominator else None

    out = {}
    for label, (prefix, _) in zip(("model", "seasonal_naive"), _SCALED_SOURCES):
        for metric, top, bottom in (("mase", "sase", "n_scaled"), ("smape", "ssmape", "n"),
                                    ("wape", "sae", "abs_actual")):
            out.setdefault(f"{metric}_by_test_period", {})[label] = {
                p: ratio(prefix + top, bottom, [p]) for p in periods}
            out.setdefault("scaled_overall", {}).setdefault(metric, {})[label] = ratio(prefix + top, bottom, periods)
    return out


def rejected_counters(frame: pd.DataFrame) -> dict:
    return {"rows_rejected_by_reason": frame["reason"].value_counts().to_dict()}


def assemble(params: PipelineParams, source: str, totals: dict, run_lineage=None) -> dict:
    """The summary document from the summed counters."""
    n, sse, base_sse = (totals.get(f"period_{s}", {}) for s in ("n", "sse", "base_sse"))
    periods = sorted(n, key=int)
    rows_rejected = totals.get("rows_rejected_validation", 0) + totals.get("rows_rejected_duplicate", 0)
    summary = {
        "run_id": params.run_id,
        "source": source,
        "rows_read": totals.get("rows_read", 0),
        "rows_used": totals.get("rows_used", 0),
        "rows_rejected": rows_rejected,
        "rows_rejected_by_reason": totals.get("rows_rejected_by_reason", {}),
        "feature_values_coerced": totals.get("feature_values_coerced", 0),
        "feature_values_missing": totals.get("feature_values_missing", 0),
        "feature_values_imputed": totals.get("feature_values_imputed", 0),
        "groups_planned": totals.get("groups_planned", 0),
        "groups_trained": totals.get("groups_trained", 0),
        "groups_skipped": totals.get("groups_skipped", 0),
        "groups_failed": totals.get("groups_failed", 0),
        "skipped_by_reason": totals.get("skipped_by_reason", {}),
        "failed_by_reason": totals.get("failed_by_reason", {}),
        **({"fallback_by_reason": totals.get("trained_by_reason", {})} if params.fallback_model else {}),
        "rmse_by_test_period": {p: math.sqrt(sse[p] / n[p]) for p in periods},
        "baseline_rmse_by_test_period": {p: math.sqrt(base_sse[p] / n[p]) for p in periods},
        **(scaled_summary(totals) if "period_n_scaled" in totals else {}),
        "season_length": params.season_length or "from each key's frequency (periods.SEASON_LENGTHS)",
        "predictions": int(sum(n.values())),
        "parameters": params.as_dict(),
    }
    by_frequency = totals.get("keys_by_frequency")
    if by_frequency or params.frequency:  # the spacing lags and rolling means counted in
        summary["frequency"] = {"given": params.frequency or None, "keys_by_frequency": by_frequency or {},
                                "most_keys": max(sorted(by_frequency), key=by_frequency.get) if by_frequency
                                else params.frequency}
    if "input_rows" in totals:
        summary["input_fingerprint"] = input_fingerprint(totals)
    if run_lineage is not None:
        summary["lineage"] = {"params_hash": run_lineage.params_hash, "code_version": run_lineage.code_version,
                              "image": run_lineage.image}
    attempted = summary["groups_trained"] + summary["groups_failed"]
    summary["failure_rate"] = summary["groups_failed"] / attempted if attempted else 0.0
    summary["max_failure_rate"] = params.max_failure_rate
    summary["rejected_rate"] = summary["rows_rejected"] / summary["rows_read"] if summary["rows_read"] else 0.0
    summary["max_rejected_rate"] = params.max_rejected_rate
    to_forecast = 0
    if params.forecast:
        to_forecast = summary["rows_to_forecast"] = totals.get("rows_to_forecast", 0)
        summary["forecast"] = {
            "keys": totals.get("forecast_keys", 0), "keys_forecast": totals.get("forecast_keys_trained", 0),
            "keys_skipped": totals.get("forecast_keys_skipped", 0),
            "keys_failed": totals.get("forecast_keys_failed", 0),
            "skipped_by_reason": totals.get("forecast_skipped_by_reason", {}),
            "failed_by_reason": totals.get("forecast_failed_by_reason", {}),
            "rows_forecast": totals.get("forecast_rows_predicted", 0),
        }
    summary["counts_reconcile"] = {
        "rows": summary["rows_read"] == summary["rows_used"] + to_forecast + summary["rows_rejected"],
        "groups": summary["groups_planned"] == (summary["groups_trained"] + summary["groups_skipped"]
                                                + summary["groups_failed"]),
    }
    return summary


def check_params(params: PipelineParams) -> None:
    for name in ("max_failure_rate", "max_rejected_rate"):
        if not 0 <= getattr(params, name) <= 1:
            raise ParameterError(name, getattr(params, name), "a fraction between 0 and 1")


class RunCheckFailed(RuntimeError):
    """The finished run's counts fail a check: the job fails, after every output is written."""


class TooManyFailedGroups(RunCheckFailed):
    """More key x windows failed than --max_failure_rate allows. Raised after every output is published."""


class NotPublished(RunCheckFailed):
    """Too many rows rejected (--max_rejected_rate), or no key x window trained: raised after every output
    is staged and before any is published, so the previous run's outputs stay in place."""


def check_before_publishing(summary: dict) -> dict:
    """Fails the job before the publish step when the run's outputs should not replace the previous ones:
    more of the rows read were rejected than --max_rejected_rate allows, or no key x window was trained."""
    output, run_id = summary["parameters"]["output"], summary["run_id"]
    kept = (f"Nothing was published: {output}/ still holds the previous run's outputs; this run's outputs "
            f"and {SUMMARY_FILE} are under {output}/_staging/{run_id}/.")
    if any(summary["parameters"].get(param) for param in OUTPUT_TABLE_PARAMS.values()):
        kept += " The BigQuery tables keep their rows; this run's are in its staging tables until they expire."
    reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(summary["rows_rejected_by_reason"].items()))
    if summary["rejected_rate"] > summary["max_rejected_rate"]:
        raise NotPublished(
            f"{summary['rows_rejected']} of {summary['rows_read']} rows were rejected ({summary['rejected_rate']:.1%} "
            f"> --max_rejected_rate={summary['max_rejected_rate']:g}; by reason: {reasons}). {kept}")
    forecast_keys = summary.get("forecast", {}).get("keys_forecast", 0)
    if summary["groups_trained"] == 0 and not forecast_keys:
        why = {**summary["skipped_by_reason"], **summary["failed_by_reason"]}
        raise NotPublished(
            f"no key x window was trained (rows used: {summary['rows_used']} of {summary['rows_read']}; planned: "
            f"{summary['groups_planned']}, skipped or failed by reason: "
            f"{', '.join(f'{r}: {n}' for r, n in sorted(why.items())) or 'none'}). {kept}")
    return summary


def check_failure_rate(summary: dict) -> dict:
    """Fails the job (after the outputs are published) when too many fitted groups failed."""
    if summary["failure_rate"] > summary["max_failure_rate"]:
        failed, attempted = summary["groups_failed"], summary["groups_trained"] + summary["groups_failed"]
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(summary["failed_by_reason"].items()))
        output = summary["parameters"]["output"]
        raise TooManyFailedGroups(
            f"{failed} of {attempted} key x windows failed ({summary['failure_rate']:.1%} > "
            f"--max_failure_rate={summary['max_failure_rate']:g}; by reason: {reasons}). Every output is "
            f"written: see {output}/ledger (status = 'failed') and {output}/{SUMMARY_FILE}.")
    return summary


def too_many_failures(exc: BaseException) -> RunCheckFailed | None:
    """The failed check (RunCheckFailed) behind a runner's exception, if that is what ended the job."""
    while exc is not None:
        if isinstance(exc, RunCheckFailed):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _each_part(parts, label: str, make) -> list:
    """`make()` applied to an output, or to each of its parts (a tuple: pipeline.stages.prepare.fanout)."""
    if not isinstance(parts, tuple):
        return [parts | label >> make()]
    return [part | (f"{label}_{i}" if i else label) >> make() for i, part in enumerate(parts)]


class WriteSummary(beam.PTransform):
    """Counters from every stage -> one summary.json. The ledger and the predictions may come as
    tuples of PCollections (their parts), counted each."""

    def __init__(self, params: PipelineParams, source: str, run_lineage=None):
        super().__init__()
        self._params, self._source, self._lineage = params, source, run_lineage

    def expand(self, inputs: dict):
        params, time_column, source, run_lineage = (self._params, self._params.time_column, self._source,
                                                    self._lineage)
        counters = (
            inputs["row_counts"],
            *_each_part(inputs["ledger"], "LedgerCounters", lambda: beam.Map(ledger_counters)),
            *_each_part(inputs["predictions"], "PredictionCounters",
                        lambda: beam.Map(prediction_counters, time_column)),
            inputs["rejected_rows"] | "RejectedCounters" >> beam.Map(rejected_counters),
            *([inputs["input_fingerprint"]] if "input_fingerprint" in inputs else []),
            *([inputs["frequencies"]] if "frequencies" in inputs else []),  # --lags: keys per frequency
            *([inputs["forecasts"] | "ForecastCounters" >> beam.Map(lambda f: {"forecast_rows_predicted": len(f)})]
              if "forecasts" in inputs else []),
        ) | "AllCounters" >> beam.Flatten()
        totals = counters | "Sum" >> beam.CombineGlobally(SumCounters())
        path = staging_path(params, SUMMARY_FILE)
        documents = totals | "Assemble" >> beam.Map(lambda t: assemble(params, source, t, run_lineage))
        if "model_comparison" in inputs:  # several models (pipeline.stages.decide.select)
            documents = documents | "AddComparison" >> beam.Map(
                lambda doc, comparison: {**doc, "model_comparison": comparison},
                beam.pvalue.AsSingleton(inputs["model_comparison"]))
        if "fan_out" in inputs:  # whether the fits were spread by key x window (pipeline.stages.prepare.fanout)
            documents = documents | "AddFanOut" >> beam.Map(
                lambda doc, fan_out: {**doc, "fan_out": fan_out}, beam.pvalue.AsSingleton(inputs["fan_out"]))
        if "intervals" in inputs:  # --interval_levels (pipeline.stages.fit.intervals)
            documents = documents | "AddIntervals" >> beam.Map(
                lambda doc, coverage: {**doc, "intervals": coverage}, beam.pvalue.AsSingleton(inputs["intervals"]))
        return documents | "WriteJson" >> beam.Map(lambda doc: write_json(path, doc) or finite_json(doc))


