"""The run report: one static HTML file (<output>/report.html), plots embedded as PNG.

Written after a local run from the outputs on disk (`python -m pipeline.record.report OUTPUT_DIR` does
the same for any finished run, local or gs://). It shows:

1. RMSE per test period against the naive baseline;
2. the distribution of per-key RMSE (model and baseline);
3. predicted vs actual over time for the best, median and worst keys (by RMSE);
4. the ledger's trained / skipped / failed counts by reason;
5. with several models, the models compared (pipeline.record.model_comparison); with --interval_levels,
   the out-of-sample coverage of the bands; with --forecast, the forecast of the best, median and worst
   keys with their bands over the last observed periods (pipeline.record.forecast_report);

with the run's lineage (run id, parameter hash, code version, input fingerprint) at the top.
No server, no JavaScript: it opens from disk or a bucket.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import sys
import threading

import numpy as np
import pandas as pd
from apache_beam.io.filesystems import FileSystems

from pipeline.io.results import read_json, read_table
from pipeline.io.sinks import MANIFEST_FILE, REPORT_FILE, SUMMARY_FILE
from pipeline.record import forecast_report, model_comparison, scale_free

MODEL_COLOR, BASELINE_COLOR, ACTUAL_COLOR = "#1f77b4", "#ff7f0e", "#333333"
SMOOTH_ABOVE_POINTS = 200  # dates per key beyond which the time plot shows weekly means


def per_key_rmse(metrics: pd.DataFrame, key_column: str) -> pd.DataFrame:
    """Each key's RMSE over all its test predictions, from the per key x window metrics:
    the squared errors of a window sum to rmse^2 x rows_test."""
    n = metrics["rows_test"].astype(float)
    sums = metrics.assign(n=n, sse=metrics["rmse"] ** 2 * n, base_sse=metrics["baseline_rmse"] ** 2 * n)
    grouped = sums.groupby(key_column)[["n", "sse", "base_sse"]].sum()
    return pd.DataFrame({"predictions": grouped["n"], "rmse": np.sqrt(grouped["sse"] / grouped["n"]),
                         "baseline_rmse": np.sqrt(grouped["base_sse"] / grouped["n"])}).sort_values("rmse")


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


# -- plots ---------------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def preload() -> threading.Thread:
    """Imports the plotting library on a background thread (about a second), so that a launcher
    waiting on its workers has done it before the run ends and the report is drawn."""
    thread = threading.Thread(target=_pyplot, name="preload-report", daemon=True)
    thread.start()
    return thread


def _figure(width=8.0, height=3.6, rows=1):
    pyplot = _pyplot()

    figure, axes = pyplot.subplots(rows, 1, figsize=(width, height * rows), squeeze=False)
    return figure, [row[0] for row in axes]


def _png(figure) -> bytes:
    from matplotlib import pyplot

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=96)
    pyplot.close(figure)
    return buffer.getvalue()


def plot_rmse_by_period(summary: dict) -> bytes:
    model, baseline = summary.get("rmse_by_test_period", {}), summary.get("baseline_rmse_by_test_period", {})
    periods = sorted(model, key=int)
    figure, (axis,) = _figure()
    x = np.arange(len(periods))
    axis.bar(x - 0.2, [model[p] for p in periods], 0.4, label="model", color=MODEL_COLOR)
    axis.bar(x + 0.2, [baseline[p] for p in periods], 0.4, label="naive baseline", color=BASELINE_COLOR)
    axis.set_xticks(x, periods)
    axis.set_xlabel("test period")
    axis.set_ylabel("RMSE")
    axis.set_title("RMSE per test period (all keys pooled)")
    axis.legend()
    return _png(figure)


def plot_key_rmse_distribution(key_rmse: pd.DataFrame) -> bytes:
    figure, (axis,) = _figure()
    values = np.concatenate([key_rmse["rmse"], key_rmse["baseline_rmse"]])
    bins = np.histogram_bin_edges(values, bins=min(30, max(5, len(key_rmse)))) if len(values) else 10
    axis.hist(key_rmse["rmse"], bins=bins, alpha=0.7, label="model", color=MODEL_COLOR)
    axis.hist(key_rmse["baseline_rmse"], bins=bins, alpha=0.5, label="naive baseline", color=BASELINE_COLOR)
    axis.set_xlabel("RMSE of one key (all its test predictions)")
    axis.set_ylabel("keys")
    axis.set_title(f"Distribution of per-key RMSE ({len(key_rmse)} keys)")
    axis.legend()
    return _png(figure)


def plot_keys_over_time(predictions: pd.DataFrame, picks: list, key_rmse: pd.DataFrame, key_column: str,
                        date_column: str) -> bytes:
    """One panel per picked key; long daily series are shown as weekly means so the lines stay readable."""
    figure, axes = _figure(width=9.0, height=2.8, rows=max(1, len(picks)))
    for axis, (label, key) in zip(axes, picks):
        rows = predictions[predictions[key_column] == key].assign(
            **{date_column: lambda f: pd.to_datetime(f[date_column])})
        weekly = rows[date_column].nunique() > SMOOTH_ABOVE_POINTS
        for number, (start, window_rows) in enumerate(rows.groupby("window_start")):
            series = window_rows.set_index(date_column).sort_index()[["actual", "predicted"]]
            if weekly:
                series = series.resample("W").mean().dropna()
            axis.plot(series.index, series["actual"], color=ACTUAL_COLOR, linewidth=1.0,
                      label="actual" if number == 0 else None)
            axis.plot(series.index, series["predicted"], color=MODEL_COLOR, linewidth=1.0,
                      label="predicted" if number == 0 else None)
        axis.set_title(f"{label} key {key}: RMSE {key_rmse.at[key, 'rmse']:.3g} "
                       f"(baseline {key_rmse.at[key, 'baseline_rmse']:.3g})"
                       + (", weekly means" if weekly else ""), fontsize=10)
        axis.legend(loc="upper left", fontsize=8)
    return _png(figure)


def plot_ledger(ledger: pd.DataFrame) -> bytes:
    counts = ledger_counts(ledger)
    figure, (axis,) = _figure(height=max(2.0, 0.45 * len(counts) + 1.2))
    labels = [f"{status}: {reason}" if reason else status for status, reason in counts.index]
    colors = {"trained": "#2ca02c", "skipped": "#bcbd22", "failed": "#d62728"}
    axis.barh(labels, counts.to_numpy(), color=[colors.get(s, "#7f7f7f") for s, _ in counts.index])
    for y, value in enumerate(counts.to_numpy()):
        axis.text(value, y, f" {value}", va="center")
    axis.set_xlim(0, max(counts.max(), 1) * 1.15)  # room for the value labels
    axis.invert_yaxis()
    axis.set_xlabel("key x windows")
    axis.set_title("Ledger: key x windows by status and reason")
    return _png(figure)


def ledger_counts(ledger: pd.DataFrame) -> pd.Series:
    if not len(ledger):
        return pd.Series(dtype=int)
    reasons = ledger["reason"].fillna("")
    return ledger.assign(reason=reasons).groupby(["status", "reason"]).size().sort_values(ascending=False)


# -- HTML ----------------------------------------------------------------------------------------------

def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(rows: list[tuple], header: tuple | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header) if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{'<tr>' + head + '</tr>' if head else ''}{body}</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


STYLE = """body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
img{max-width:100%;display:block;margin:.5em 0}code{background:#f4f4f4}"""


def render(summary: dict, manifest: dict | None, metrics: pd.DataFrame, read_predictions, ledger: pd.DataFrame,
           read_forecasts=None) -> str:
    """The report's HTML. `read_predictions(keys)` gives the prediction rows of those keys (only the
    best, median and worst keys are plotted, so the whole prediction table is never loaded)."""
    parameters = summary.get("parameters", {})
    key_column, date_column = parameters.get("key_column", "key"), parameters.get("date_column", "date")
    lineage = summary.get("lineage", {})
    fingerprint = summary.get("input_fingerprint", {})
    facts = [("run id", summary.get("run_id")), ("params hash", lineage.get("params_hash")),
             ("code version", lineage.get("code_version")), ("image", lineage.get("image") or "none (local)"),
             ("input", f"{fingerprint.get('rows')} rows, row hash {fingerprint.get('row_hash')}"),
             ("model", f"{parameters.get('model')} {json.dumps(parameters.get('model_params', {}))}"),
             ("windows", f"size {parameters.get('window_size')}, period {parameters.get('window_period')}, "
                         f"test periods {parameters.get('test_periods')}"),
             ("rows", f"read {summary.get('rows_read')}, used {summary.get('rows_used')}, "
                      f"rejected {summary.get('rows_rejected')}"),
             ("key x windows", f"planned {summary.get('groups_planned')}, trained {summary.get('groups_trained')}, "
                               f"skipped {summary.get('groups_skipped')}, failed {summary.get('groups_failed')}")]
    if manifest:
        facts.append(("started / finished", f"{manifest.get('started_at')} / {manifest.get('finished_at')}"))
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Run report {html.escape(str(summary.get('run_id')))}"
             f"</title><style>{STYLE}</style></head><body>",
             f"<h1>Run report: {html.escape(str(summary.get('run_id')))}</h1>", _table(facts)]

    model, baseline = summary.get("rmse_by_test_period", {}), summary.get("baseline_rmse_by_test_period", {})
    parts.append("<h2>RMSE per test period vs the naive baseline</h2>")
    if model:
        parts.append(_img(plot_rmse_by_period(summary), "RMSE per test period"))
        parts.append(_table([(p, model[p], baseline.get(p), baseline.get(p, 0) and model[p] / baseline[p])
                             for p in sorted(model, key=int)], ("test period", "RMSE", "baseline RMSE", "ratio")))
    else:
        parts.append("<p>No predictions: nothing was trained.</p>")
    parts += scale_free.section(summary, _table)
    parts += model_comparison.section(summary, _table)
    parts += forecast_report.coverage_section(summary, _table)
    forecast_ledger = ledger["reason"].fillna("").astype(str).str.startswith("forecast") if len(ledger) else None
    if forecast_ledger is not None:  # the forecast's own ledger rows (--forecast) are summarised with it
        ledger = ledger[~forecast_ledger]

    if len(metrics):
        key_rmse = per_key_rmse(metrics, key_column)
        picks = best_median_worst(key_rmse)
        predictions = read_predictions([key for _, key in picks])
        beats = int((key_rmse["rmse"] < key_rmse["baseline_rmse"]).sum())
        parts += ["<h2>Per-key RMSE</h2>",
                  f"<p>The model beats the naive baseline on {beats} of {len(key_rmse)} keys. "
                  f"Median per-key RMSE {key_rmse['rmse'].median():.4g} "
                  f"(baseline {key_rmse['baseline_rmse'].median():.4g}).</p>",
                  _img(plot_key_rmse_distribution(key_rmse), "distribution of per-key RMSE"),
                  "<h2>Predicted vs actual: best, median and worst keys</h2>",
                  _img(plot_keys_over_time(predictions, picks, key_rmse, key_column, date_column),
                       "predicted vs actual over time"),
                  _table([(label, key, key_rmse.at[key, "rmse"], key_rmse.at[key, "baseline_rmse"],
                           int(key_rmse.at[key, "predictions"])) for label, key in picks],
                         ("", key_column, "RMSE", "baseline RMSE", "predictions"))]
        forecasts = read_forecasts([key for _, key in picks]) if read_forecasts else None
        parts += forecast_report.forecast_section(summary, picks, predictions, forecasts, _table, _img,
                                                  _figure, _png)

    parts.append("<h2>Ledger</h2>")
    if len(ledger):
        counts = ledger_counts(ledger)
        parts += [_img(plot_ledger(ledger), "ledger counts by status and reason"),
                  _table([(s, r, int(n)) for (s, r), n in counts.items()], ("status", "reason", "key x windows"))]
    parts.append("</body></html>")
    return "\n".join(parts)


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
                      (lambda keys: read_table(output, "forecasts", where=(key_column, keys)))
                      if summary.get("forecast") else None)
    path = FileSystems.join(output, REPORT_FILE)
    with FileSystems.create(path) as handle:
        handle.write(document.encode())
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m pipeline.record.report OUTPUT_DIR")
    print(write_report(sys.argv[1]))
