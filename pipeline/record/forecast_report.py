"""The report's interval coverage and forecast sections (--interval_levels, --forecast).

`coverage_section`: the out-of-sample coverage of each band (summary.json's `intervals`), per model, level
and test period. `forecast_section`: for the best, median and worst keys (by backtest RMSE), the actuals
and backtest predictions of the last observed periods, then the forecast, with the bands drawn.
The report's own helpers (table, image, figure) are passed in, so this module imports nothing of it.
"""

from __future__ import annotations

import html

import pandas as pd

ACTUAL_COLOR, MODEL_COLOR, FORECAST_COLOR = "#333333", "#1f77b4", "#2ca02c"
SMOOTH_ABOVE_POINTS = 200


def coverage_section(summary: dict, table) -> list[str]:
    document = summary.get("intervals")
    if not document:
        return []
    rows = []
    for model, by_level in document["coverage_out_of_sample"].items():
        for level, measured in by_level.items():
            for period, value in measured["by_test_period"].items():
                rows.append((model, f"{level}%", period, measured["rows_by_test_period"][period], value))
            rows.append((model, f"{level}%", "overall", measured["rows"], measured["overall"]))
    return [
        "<h2>Interval coverage (out of sample)</h2>",
        f"<p>{html.escape(document['method'])}. Each backtest window's band comes from the key's earlier "
        "windows only (test periods ending before this window's first); the share of actuals inside it is "
        "shown against the nominal level. Rows without a finite band (a key's first windows: too few "
        "residuals) are not counted here.</p>",
        table(rows, ("model", "level", "test period", "rows with a band", "coverage")),
    ]


def _series(frame: pd.DataFrame, date_column: str, columns: list[str], weekly: bool) -> pd.DataFrame:
    series = frame.assign(**{date_column: pd.to_datetime(frame[date_column])}).set_index(date_column).sort_index()
    series = series[columns]
    return series.resample("W").mean().dropna(how="all") if weekly else series


def plot_forecasts(predictions: pd.DataFrame, forecasts: pd.DataFrame, picks: list, parameters: dict,
                   figure_fn, png_fn) -> bytes:
    """One panel per picked key: the last observed periods (actual, backtest prediction, its band) and the
    forecast with its bands (the widest level lightest)."""
    key_column, date_column = parameters.get("key_column", "key"), parameters.get("date_column", "date")
    time_column = parameters.get("time_column", "period")
    levels = sorted(int(level) for level in parameters.get("interval_levels") or [])
    figure, axes = figure_fn(width=9.0, height=2.8, rows=max(1, len(picks)))
    for axis, (label, key) in zip(axes, picks):
        mine = forecasts[forecasts[key_column] == key]
        observed = predictions[predictions[key_column] == key]
        if len(mine):
            observed = observed[observed["model"] == mine["model"].iloc[0]]
        # The last observed periods: the test periods of the key's last backtest window.
        if len(observed):
            observed = observed[observed["window_start"] == observed["window_start"].max()]
        weekly = (observed[date_column].nunique() + mine[date_column].nunique()) > SMOOTH_ABOVE_POINTS
        bands = [(f"lower_{level}", f"upper_{level}") for level in reversed(levels)]
        band_columns = [c for pair in bands for c in pair]
        if len(observed):
            past = _series(observed, date_column, ["actual", "predicted",
                                                   *[c for c in band_columns if c in observed]], weekly)
            axis.plot(past.index, past["actual"], color=ACTUAL_COLOR, linewidth=1.0, label="actual")
            axis.plot(past.index, past["predicted"], color=MODEL_COLOR, linewidth=1.0, label="backtest")
            for shade, (lower, upper) in enumerate(bands):
                if lower in past:
                    axis.fill_between(past.index, past[lower], past[upper], color=MODEL_COLOR,
                                      alpha=0.12 + 0.1 * shade, linewidth=0)
        if len(mine):
            future = _series(mine, date_column, ["predicted", *[c for c in band_columns if c in mine]], weekly)
            axis.plot(future.index, future["predicted"], color=FORECAST_COLOR, linewidth=1.2, label="forecast")
            for shade, (lower, upper) in enumerate(bands):
                if lower in future:
                    axis.fill_between(future.index, future[lower], future[upper], color=FORECAST_COLOR,
                                      alpha=0.15 + 0.12 * shade, linewidth=0,
                                      label=f"{levels[len(levels) - 1 - shade]}% band")
        periods = sorted(set(mine[time_column].tolist())) if len(mine) else []
        title = f"{label} key {key}: " + (f"forecast of {', '.join(map(str, periods))} ({mine['model'].iloc[0]})"
                                          if len(mine) else "no forecast (see the ledger)")
        axis.set_title(title + (", weekly means" if weekly else ""), fontsize=10)
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)  # never over the lines
    return png_fn(figure)


def forecast_section(summary: dict, picks: list, predictions: pd.DataFrame, forecasts: pd.DataFrame | None,
                     table, img, figure_fn, png_fn) -> list[str]:
    document = summary.get("forecast")
    if not document:
        return []
    parts = ["<h2>Forecast: best, median and worst keys</h2>",
             f"<p>{document['keys_forecast']} of {document['keys']} keys with rows to forecast were forecast "
             f"({document['rows_forecast']} rows); skipped: "
             f"{html.escape(', '.join(f'{r} {n}' for r, n in document['skipped_by_reason'].items()) or 'none')}; "
             f"failed: {html.escape(', '.join(f'{r} {n}' for r, n in document['failed_by_reason'].items()) or 'none')}."
             " Each key's chosen model (or the only one) is refit on its last observed periods; the bands come "
             "from its backtest residuals. Drawn over the last observed periods (the key's last backtest "
             "window).</p>"]
    if forecasts is not None and len(forecasts) and picks:
        parameters = summary.get("parameters", {})
        parts.append(img(plot_forecasts(predictions, forecasts, picks, parameters, figure_fn, png_fn),
                         "forecast of the best, median and worst keys"))
    return parts
