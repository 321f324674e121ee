"""The run report: one static HTML file (<output>/report.html), plots embedded as PNG.

Written after a local run from the outputs on disk (`python -m pipeline.record.report OUTPUT_DIR` does
the same for any finished run, local or gs://). It shows, under the run's lineage and, loudly, any model
that loses to the naive baseline:

1. RMSE per test period of each model and of the naive baseline (pipeline.record.report_plots);
2. per-key RMSE of each model, and each key's model RMSE against its baseline's (wins and losses);
3. predicted vs actual (and the baseline) over time for the best, median and worst keys, each with its
   chosen model (or the only one);
4. with several models, the models compared (pipeline.record.model_comparison); with --interval_levels,
   the out-of-sample coverage of the bands, nominal vs observed; with --forecast, the forecast of the
   best, median and worst keys (pipeline.record.forecast_report);
5. a sortable, searchable table of every key, whose rows show that key's plot (pipeline.record.report_keys);
6. the ledger's trained / skipped / failed counts by reason.

No server: it opens from disk or a bucket (the key table's script is inline).
"""

from __future__ import annotations

import base64
import html
import json
import math
import sys
import threading

import numpy as np
import pandas as pd
from apache_beam.io.filesystems import FileSystems

from pipeline.io.outputs.sinks import MANIFEST_FILE, REPORT_FILE, SUMMARY_FILE
from pipeline.io.publishing.results import read_json, read_table
from pipeline.record import forecast_report, model_comparison, report_keys, report_plots, scale_free, scores

MANY_ROWS = 24  # a longer table is folded away (<details>) under its chart


def per_key_rmse(metrics: pd.DataFrame, key_column: str) -> pd.DataFrame:
    """Each key's RMSE over all its test predictions (one model's metrics), sorted by RMSE."""
    keyed = scores.by_key(metrics, key_column).droplevel("model")
    return keyed.rename(columns={"rows": "predictions"})[["predictions", "rmse", "baseline_rmse"]].sort_values("rmse")


def best_median_worst(key_rmse: pd.DataFrame) -> list[tuple[str, str]]:
    keys = list(key_rmse.index)
    if not keys:
        return []
    picks = [("best", keys[0]), ("median", keys[(len(keys) - 1) // 2]), ("worst", keys[-1])]
    seen, unique = set(), []
    for label, key in picks:
        if key not in seen:
            seen.add(key)
            unique.append((label, key))
    return unique


def preload() -> threading.Thread:
    """Imports the plotting library on a background thread (about a second), so that a launcher
    waiting on its workers has done it before the run ends and the report is drawn."""
    thread = threading.Thread(target=report_plots._pyplot, name="preload-report", daemon=True)
    thread.start()
    return thread


def chosen_models(metrics: pd.DataFrame, selection: pd.DataFrame | None, key_column: str,
                  models: list[str]) -> pd.Series:
    """Each key's model: the one selection/ chose, else the first listed (the only one, usually)."""
    keys = pd.Index(pd.unique(metrics[key_column]), name=key_column)
    chosen = pd.Series(models[0] if models else "", index=keys, dtype=object)
    if selection is not None and len(selection) and "chosen" in selection:
        picked = selection[selection["chosen"].astype(bool)].drop_duplicates(key_column).set_index(key_column)
        chosen.update(picked["model"])
    return chosen


def describe_models(parameters: dict) -> str:
    """`gbr (default hyperparameters)`, `ridge, gbr; gbr: n_estimators=20`: the models as people read them."""
    names = str(parameters.get("model", "")).replace(",", ", ")
    given = parameters.get("model_params") or {}
    if not given:
        return f"{names} (default hyperparameters)"

    def pairs(values: dict) -> str:
        return ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items())

    if all(isinstance(v, dict) for v in given.values()) and set(given) <= set(names.split(", ")):
        return names + "; " + "; ".join(f"{model}: {pairs(values)}" for model, values in given.items())
    return f"{names}; {pairs(given)}"


# -- HTML ----------------------------------------------------------------------------------------------

def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(rows: list[tuple], header: tuple | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header) if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    table = f"<table>{'<tr>' + head + '</tr>' if head else ''}{body}</table>"
    return f"<details><summary>the table ({len(rows)} rows)</summary>{table}</details>" if len(rows) > MANY_ROWS else table


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else scores.fmt(value)
    return str(value)


STYLE = """body{font-family:sans-serif;max-width:64em;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
img{max-width:100%;display:block;margin:.5em 0}code{background:#f4f4f4}
.loses{background:#fde2e1;border-left:6px solid #d62728;padding:.5em 1em;font-weight:bold}
#keys th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}#keys tbody tr{cursor:pointer}
#keys tbody tr:hover{background:#eef5fb}.scroll{max-height:30em;overflow:auto}
.key-plot{min-height:4em;border:1px solid #ddd;padding:.3em .6em;margin:.5em 0}.legend{font-size:.85em}
#key-search{padding:.3em;width:20em}"""


def _facts(summary: dict, manifest: dict | None) -> list[tuple]:
    parameters = summary.get("parameters", {})
    lineage, fingerprint = summary.get("lineage", {}), summary.get("input_fingerprint", {})
    facts = [("run id", summary.get("run_id")), ("params hash", lineage.get("params_hash")),
             ("code version", lineage.get("code_version")), ("image", lineage.get("image") or "none (local)"),
             ("input", f"{fingerprint.get('rows')} rows, row hash {fingerprint.get('row_hash')}"),
             ("model", describe_models(parameters)),
             ("windows", f"size {parameters.get('window_size')}, period {parameters.get('window_period')}, "
                         f"test periods {parameters.get('test_periods')}"),
             ("rows", f"read {summary.get('rows_read')}, used {summary.get('rows_used')}, "
                      f"rejected {summary.get('rows_rejected')}"),
             ("key x windows", f"planned {summary.get('groups_planned')}, trained {summary.get('groups_trained')}, "
                               f"skipped {summary.get('groups_skipped')}, failed {summary.get('groups_failed')}")]
    if manifest:
        facts.append(("started / finished", f"{manifest.get('started_at')} / {manifest.get('finished_at')}"))
    return facts


def _period_section(metrics: pd.DataFrame, models: list[str], unit: str | None) -> list[str]:
    parts = ["<h2>RMSE per test period vs the naive baseline</h2>"]
    if not len(metrics):
        return parts + ["<p>No predictions: nothing was trained.</p>"]
    table = scores.by_period(metrics, unit)
    rows = []
    for test, group in table.sort_values("test_start").groupby("test", sort=False):
        by_model = group.set_index("model")
        base = float(by_model["baseline_rmse"].iloc[0])
        rows.append((test, *(by_model["rmse"].get(m) for m in models), base,
                     *(by_model["rmse"].get(m) / base if base and np.isfinite(base) else None for m in models)))
    ratio = [f"ratio {m}" if len(models) > 1 else "ratio" for m in models]
    return parts + [_img(report_plots.plot_models_by_period(table, models), "RMSE per test period"),
                    _table(rows, ("test period", *(f"RMSE {m}" if len(models) > 1 else "RMSE" for m in models),
                                  "baseline RMSE", *ratio))]


def _coverage_plot(summary: dict, unit: str | None) -> list[str]:
    document = summary.get("intervals")
    if not document:
        return []
    rows = [(model, int(level), scores.period_text(period, unit), value)
            for model, by_level in document["coverage_out_of_sample"].items()
            for level, measured in by_level.items() for period, value in measured["by_test_period"].items()]
    return [_img(report_plots.plot_coverage(rows), "interval coverage, nominal vs observed")] if rows else []


def _key_table(metrics, keyed, chosen, forecasts, key_column) -> pd.DataFrame:
    mine = pd.MultiIndex.from_arrays([chosen.to_numpy(), chosen.index])
    best = keyed.reindex(mine).set_axis(chosen.index)
    table = pd.DataFrame({"model": chosen, "RMSE": best["rmse"], "baseline RMSE": best["baseline_rmse"],
                          "ratio": best["rmse"] / best["baseline_rmse"].replace(0, np.nan)})
    for metric in scores.MEAN_METRICS:
        if metric in best:
            table[metric.upper()] = best[metric]
    levels = [c for c in metrics.columns if c.startswith("coverage_")]
    if levels:
        frame = metrics if "model" in metrics else metrics.assign(model=chosen.iloc[0])
        frame = frame[frame["model"].to_numpy() == chosen.reindex(frame[key_column]).to_numpy()]
        for column in levels:
            table[f"coverage {column.split('_', 1)[1]}%"] = frame.groupby(key_column)[column].mean()
    if forecasts is not None and len(forecasts):
        grouped = forecasts.groupby(key_column)["predicted"]
        table["forecast rows"], table["mean forecast"] = grouped.size(), grouped.mean()
    return table.sort_values("RMSE")


def render(summary: dict, manifest: dict | None, metrics: pd.DataFrame, read_predictions, ledger: pd.DataFrame,
           read_forecasts=None, selection: pd.DataFrame | None = None) -> str:
    """The report's HTML. `read_predictions(keys)` gives the prediction rows of those keys (only the
    plotted keys are read, so the whole prediction table is never loaded)."""
    parameters = summary.get("parameters", {})
    key_column, date_column = parameters.get("key_column", "key"), parameters.get("date_column", "date")
    unit = parameters.get("period") or None
    models = scores.models_of(metrics, parameters.get("model"))
    run_id = html.escape(str(summary.get("run_id")))
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Run report {run_id}</title>"
             f"<style>{STYLE}</style></head><body>", f"<h1>Run report: {run_id}</h1>"]
    found = scores.verdicts(metrics, key_column, parameters.get("model"))
    parts += [f"<p class='loses'>{html.escape(line)}</p>" for line in scores.warning_lines(found)]
    parts.append(_table(_facts(summary, manifest)))
    parts += _period_section(metrics, models, unit)
    parts += scale_free.section(summary, _table)
    parts += model_comparison.section(summary, _table)
    coverage = forecast_report.coverage_section(summary, _table)
    if coverage:  # the plot first; the raw fractions folded away under it
        heading, text, table = coverage
        parts += [heading, text, *_coverage_plot(summary, unit),
                  table if table.startswith("<details>") else f"<details><summary>the table</summary>{table}</details>"]
    forecast_ledger = ledger["reason"].fillna("").astype(str).str.startswith("forecast") if len(ledger) else None
    if forecast_ledger is not None:  # the forecast's own ledger rows (--forecast) are summarised with it
        ledger = ledger[~forecast_ledger]

    if len(metrics):
        keyed = scores.by_key(metrics, key_column)
        chosen = chosen_models(metrics, selection, key_column, models)
        forecasts_all = read_forecasts(None) if read_forecasts else None
        table = _key_table(metrics, keyed, chosen, forecasts_all, key_column)
        scored = table.rename(columns={"RMSE": "rmse", "baseline RMSE": "baseline_rmse"})
        picks = best_median_worst(scored)
        plotted = report_keys.plotted_keys(table)
        wanted = list(dict.fromkeys([key for _, key in picks] + plotted))
        predictions = read_predictions(wanted)
        if "model" in predictions and len(predictions):
            predictions = predictions[predictions["model"].to_numpy()
                                      == chosen.reindex(predictions[key_column]).to_numpy()]
        which = "each key's chosen model" if len(models) > 1 else models[0]
        parts += ["<h2>Per-key RMSE</h2>",
                  "".join(f"<p>{html.escape(v.sentence())}.</p>" for v in found),
                  _img(report_plots.plot_key_rmse_distribution(keyed, models), "distribution of per-key RMSE"),
                  _img(report_plots.plot_win_loss(keyed, models), "per key: model vs baseline"),
                  f"<h2>Predicted vs actual: best, median and worst keys ({html.escape(which)})</h2>",
                  _img(report_plots.plot_keys_over_time(predictions, picks, scored, key_column, date_column,
                                                        report_plots.MODEL_COLORS[0]),
                       "predicted vs actual over time"),
                  _table([(label, key, chosen[key], scored.at[key, "rmse"], scored.at[key, "baseline_rmse"])
                          for label, key in picks], ("", key_column, "model", "RMSE", "baseline RMSE"))]
        forecasts = (forecasts_all[forecasts_all[key_column].isin([k for _, k in picks])]
                     if forecasts_all is not None else None)
        parts += forecast_report.forecast_section(summary, picks, predictions, forecasts, _table, _img,
                                                  report_plots.figure, report_plots.png)
        parts += report_keys.section(table, predictions[predictions[key_column].isin(plotted)], key_column,
                                     date_column, plotted)

    parts.append("<h2>Ledger</h2>")
    if len(ledger):
        counts = ledger_counts(ledger)
        parts += [_img(report_plots.plot_ledger(counts), "ledger counts by status and reason"),
                  _table([(s, r, int(n)) for (s, r), n in counts.items()], ("status", "reason", "key x windows"))]
    parts.append("</body></html>")
    return "\n".join(parts)


def ledger_counts(ledger: pd.DataFrame) -> pd.Series:
    if not len(ledger):
        return pd.Series(dtype=int)
    reasons = ledger["reason"].fillna("")
    return ledger.assign(reason=reasons).groupby(["status", "reason"]).size().sort_values(ascending=False)


def write_report(output: str) -> str:
    """Renders <output>/report.html from a finished run's outputs; returns its path."""
    summary = read_json(output, SUMMARY_FILE)
    try:
        manifest = read_json(output, MANIFEST_FILE)
    except (OSError, FileNotFoundError):
        manifest = None
    key_column = summary.get("parameters", {}).get("key_column", "key")
    document = render(summary, manifest, read_table(output, "metrics"),
                      lambda keys: read_table(output, "predictions", where=(key_column, keys)),
                      read_table(output, "ledger"),
                      (lambda keys: read_table(output, "forecasts")) if summary.get("forecast") else None,
                      read_table(output, "selection") if summary.get("model_comparison") else None)
    path = FileSystems.join(output, REPORT_FILE)
    with FileSystems.create(path) as handle:
        handle.write(document.encode())
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m pipeline.record.report OUTPUT_DIR")
    print(write_report(sys.argv[1]))
