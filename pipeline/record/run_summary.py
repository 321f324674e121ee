"""What a local run prints when it ends: a short table a person reads (summary.json stays the full record;
`--json` prints that instead, for scripts).

    per test period: each model's RMSE (and MASE when measured) next to the naive baseline's, rounded;
    key x windows trained / skipped / failed with the reasons; with several models, the keys each one wins;
    with --forecast, the keys forecast; with --interval_levels, the coverage of each band;
    and, loudly, every model that loses to the naive baseline.
"""

from __future__ import annotations

import pandas as pd

from pipeline.record import scores
from pipeline.record.scores import fmt

MAX_PERIOD_LINES = 24  # more test periods: the first and last ones, and how many are left out


def _reasons(by_reason: dict) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in sorted(by_reason.items(), key=lambda kv: -kv[1]))


def period_table(metrics: pd.DataFrame, unit: str | None, declared: str | None = None) -> list[str]:
    table = scores.by_period(metrics, unit)
    if not len(table):
        return ["No predictions: nothing was trained."]
    models = scores.models_of(metrics, declared)
    extra = [m for m in scores.MEAN_METRICS[:1] if m in table]  # MASE: the scale-free one
    columns = {}
    for model in models:
        mine = table[table["model"] == model].set_index("test")
        columns[f"{model} RMSE" if len(models) > 1 else "RMSE"] = mine["rmse"]
        for metric in extra:
            columns[f"{model} {metric.upper()}" if len(models) > 1 else metric.upper()] = mine[metric]
    first = table[table["model"] == models[0]].set_index("test")
    columns["baseline RMSE"] = first["baseline_rmse"]
    columns["keys"] = first["windows"]
    shown = pd.DataFrame(columns)
    shown.index.name = "test period"
    hidden = 0
    if len(shown) > MAX_PERIOD_LINES:
        hidden = len(shown) - MAX_PERIOD_LINES
        shown = pd.concat([shown.head(MAX_PERIOD_LINES // 2), shown.tail(MAX_PERIOD_LINES // 2)])
    text = shown.to_string(formatters={c: fmt for c in shown.columns if c != "keys"})
    lines = text.splitlines()
    if hidden:
        lines.insert(MAX_PERIOD_LINES // 2 + 2, f"  ... {hidden} more test periods in the report and metrics/")
    return lines


def format_result(summary: dict, metrics: pd.DataFrame) -> str:
    parameters = summary.get("parameters", {})
    key_column = parameters.get("key_column", "key")
    found = scores.verdicts(metrics, key_column, parameters.get("model"))
    loud = scores.warning_lines(found)
    lines = [*loud, *([""] if loud else [])]
    lines += [f"Run {summary.get('run_id')}: {summary.get('rows_used')} rows used of {summary.get('rows_read')} read"
              + (f", {summary.get('rows_rejected')} rejected ({_reasons(summary.get('rows_rejected_by_reason', {}))})"
                 if summary.get("rows_rejected") else "")
              + (f", {summary['rows_to_forecast']} to forecast" if summary.get("rows_to_forecast") else ""), ""]
    lines += period_table(metrics, parameters.get("period") or None, parameters.get("model"))
    lines.append("")
    lines.append(f"Key x windows: {summary.get('groups_planned')} planned, {summary.get('groups_trained')} trained, "
                 f"{summary.get('groups_skipped')} skipped, {summary.get('groups_failed')} failed")
    for status in ("skipped", "failed"):
        if summary.get(f"{status}_by_reason"):
            lines.append(f"  {status}: {_reasons(summary[f'{status}_by_reason'])}")
    for verdict in found:
        if not verdict.loses:
            lines.append(f"{verdict.sentence()}.")
    comparison = summary.get("model_comparison")
    if comparison:
        wins = comparison.get("keys_choosing", {})
        lines.append("Keys won (chosen on the backtest, by " + comparison.get("select_metric", "rmse").upper() + "): "
                     + ", ".join(f"{model} {wins.get(model, 0)}" for model in comparison.get("models", []))
                     + (f", no choice {comparison['keys_without_choice']}" if comparison.get("keys_without_choice")
                        else ""))
    forecast = summary.get("forecast")
    if forecast:
        lines.append(f"Forecast: {forecast['keys_forecast']} of {forecast['keys']} keys ({forecast['rows_forecast']} "
                     "rows)" + (f"; skipped: {_reasons(forecast['skipped_by_reason'])}"
                                if forecast.get("skipped_by_reason") else "")
                     + (f"; failed: {_reasons(forecast['failed_by_reason'])}" if forecast.get("failed_by_reason")
                        else ""))
    intervals = summary.get("intervals")
    if intervals:
        for model, by_level in intervals.get("coverage_out_of_sample", {}).items():
            bands = ", ".join(f"{level}% band {_percent(measured.get('overall'))}"
                              for level, measured in sorted(by_level.items(), key=lambda kv: int(kv[0])))
            lines.append(f"Coverage out of sample ({model}): {bands}")
    return "\n".join(lines)


def _percent(value) -> str:
    return "no band yet" if value is None else f"{100 * value:.1f}%"
