"""The report's charts (matplotlib, PNG): models per test period, per-key RMSE, wins and losses against
the baseline, keys over time, coverage, the ledger.

Drawn safely whatever the data: keys and labels are shown literally (matplotlib's math markup such as
`$\\frac{$` is escaped), non-finite values are left out and huge finite ones clipped to what the
plotting library can place on an axis; legends sit outside the axes, never over the bars.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

MODEL_COLORS = ("#1f77b4", "#9467bd", "#2ca02c", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
BASELINE_COLOR, ACTUAL_COLOR = "#ff7f0e", "#333333"
SMOOTH_ABOVE_POINTS = 200  # dates per key beyond which the time plot shows weekly means
MAX_BARS = 24  # more test periods: lines instead of grouped bars
MAX_TICKS = 16  # period labels shown on an axis at most
LIMIT = 1e150  # |values| beyond this are clipped (an axis spanning 1e308 overflows)
# The figures are made at the PNG's resolution, so that the layout passes (tight_layout, the tight bounding
# box) and the PNG itself measure every text with one renderer and its cache: a third less time per chart.
DPI = 96


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def figure(width=8.0, height=3.6, rows=1):
    figure_, axes = _pyplot().subplots(rows, 1, figsize=(width, height * rows), squeeze=False, dpi=DPI)
    return figure_, [row[0] for row in axes]


def png(figure_) -> bytes:
    """The figure laid out (tight_layout) and cropped to its contents, as savefig's bbox_inches="tight" does.
    The crop is measured on the laid-out figure here, so that savefig draws once: given "tight" (or a figure
    with a layout engine, which tight_layout leaves behind) it draws the whole figure once more only to
    measure it. The same PNG bytes, a fifth less time per chart."""
    buffer = io.BytesIO()
    figure_.tight_layout()
    figure_.set_layout_engine(None)
    crop = figure_.get_tightbbox(figure_.canvas.get_renderer()).padded(_pyplot().rcParams["savefig.pad_inches"])
    figure_.savefig(buffer, format="png", dpi=DPI, bbox_inches=crop)
    _pyplot().close(figure_)
    return buffer.getvalue()


def literal(text) -> str:
    """Text drawn as written: matplotlib reads $...$ as math markup."""
    return str(text).replace("\\", "\\\\").replace("$", r"\$")


def finite(values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return np.where(np.isfinite(array), np.clip(array, -LIMIT, LIMIT), np.nan)


def model_color(models: list[str], model: str) -> str:
    return MODEL_COLORS[models.index(model) % len(MODEL_COLORS)] if model in models else MODEL_COLORS[0]


def _legend_outside(axis) -> None:
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _period_ticks(axis, labels: list[str]) -> None:
    step = max(1, int(np.ceil(len(labels) / MAX_TICKS)))
    positions = np.arange(len(labels))[::step]
    axis.set_xticks(positions, [literal(labels[i]) for i in positions], rotation=45 if len(labels) > 8 else 0,
                    ha="right" if len(labels) > 8 else "center")


def plot_models_by_period(table: pd.DataFrame, models: list[str]) -> bytes:
    """RMSE per test period of each model and of the naive baseline: grouped bars, or lines when the
    periods are many."""
    periods = list(dict.fromkeys(table.sort_values("test_start")["test"]))
    figure_, (axis,) = figure(width=9.0)
    x = np.arange(len(periods))
    series = [(model, table[table["model"] == model].set_index("test")["rmse"], model_color(models, model))
              for model in models]
    series.append(("naive baseline", table[table["model"] == models[0]].set_index("test")["baseline_rmse"],
                   BASELINE_COLOR))
    width = 0.8 / len(series)
    for number, (label, values, color) in enumerate(series):
        heights = finite(values.reindex(periods))
        if len(periods) > MAX_BARS:
            axis.plot(x, heights, label=literal(label), color=color, linewidth=1.2, marker=".")
        else:
            axis.bar(x - 0.4 + width * (number + 0.5), heights, width, label=literal(label), color=color)
    _period_ticks(axis, periods)
    axis.set_xlabel("test period")
    axis.set_ylabel("RMSE")
    axis.set_title("RMSE per test period, each model and the naive baseline (all keys pooled)")
    _legend_outside(axis)
    return png(figure_)


def plot_key_rmse_distribution(keyed: pd.DataFrame, models: list[str]) -> bytes:
    """Per-key RMSE of each model (its own histogram) and of the baseline."""
    figure_, (axis,) = figure(width=9.0)
    values = finite(np.concatenate([keyed["rmse"], keyed["baseline_rmse"]]))
    values = values[np.isfinite(values)]
    bins = np.histogram_bin_edges(values, bins=min(30, max(5, len(keyed)))) if len(values) else 10
    for model in models:
        mine = finite(keyed.loc[model, "rmse"])
        axis.hist(mine[np.isfinite(mine)], bins=bins, alpha=0.55, label=literal(model),
                  color=model_color(models, model))
    base = finite(keyed.loc[models[0], "baseline_rmse"])
    axis.hist(base[np.isfinite(base)], bins=bins, histtype="step", linewidth=1.5, label="naive baseline",
              color=BASELINE_COLOR)
    axis.set_xlabel("RMSE of one key (all its test predictions)")
    axis.set_ylabel("keys")
    axis.set_title(f"Per-key RMSE, each model ({len(base)} keys)")
    _legend_outside(axis)
    return png(figure_)


def plot_win_loss(keyed: pd.DataFrame, models: list[str]) -> bytes:
    """One point per key and model: its RMSE against the baseline's; below the diagonal the model wins."""
    figure_, (axis,) = figure(width=6.5, height=5.0)
    top = 0.0
    for model in models:
        mine = keyed.loc[model]
        x, y = finite(mine["baseline_rmse"]), finite(mine["rmse"])
        wins = int((y < x).sum())
        axis.scatter(x, y, s=12, alpha=0.6, color=model_color(models, model),
                     label=literal(f"{model}: wins {wins} of {len(mine)} keys"))
        top = max(top, np.nanmax(np.concatenate([x, y, [0.0]])))
    axis.plot([0, top or 1], [0, top or 1], color="#999999", linestyle="--", linewidth=1, label="model = baseline")
    axis.set_xlabel("baseline RMSE of the key")
    axis.set_ylabel("model RMSE of the key")
    axis.set_title("Per key: model vs naive baseline (below the line: the model wins)")
    _legend_outside(axis)
    return png(figure_)


def plot_keys_over_time(predictions: pd.DataFrame, picks: list, scored: pd.DataFrame, key_column: str,
                        date_column: str, color: str) -> bytes:
    """One panel per picked key (its chosen model): actual, predicted and the naive baseline; long daily
    series are shown as weekly means so the lines stay readable."""
    figure_, axes = figure(width=9.0, height=2.8, rows=max(1, len(picks)))
    for axis, (label, key) in zip(axes, picks):
        rows = predictions[predictions[key_column] == key].assign(
            **{date_column: lambda f: pd.to_datetime(f[date_column])})
        weekly = rows[date_column].nunique() > SMOOTH_ABOVE_POINTS
        for number, (_, window_rows) in enumerate(rows.groupby("window_start")):
            series = window_rows.set_index(date_column).sort_index()[["actual", "predicted", "baseline"]]
            series = series.apply(finite).resample("W").mean().dropna() if weekly else series.apply(finite)
            for column, line_color, width in (("actual", ACTUAL_COLOR, 1.0), ("baseline", BASELINE_COLOR, 0.8),
                                              ("predicted", color, 1.0)):
                axis.plot(series.index, series[column], color=line_color, linewidth=width,
                          linestyle="--" if column == "baseline" else "-",
                          label=("naive baseline" if column == "baseline" else column) if number == 0 else None)
        model = rows["model"].iloc[0] if "model" in rows and len(rows) else ""
        axis.set_title(literal(f"{label} key {key} ({model}): RMSE {scored.at[key, 'rmse']:.3g} "
                               f"(baseline {scored.at[key, 'baseline_rmse']:.3g})"
                               + (", weekly means" if weekly else "")), fontsize=10)
        _legend_outside(axis)
    return png(figure_)


def plot_coverage(rows: list[tuple]) -> bytes:
    """(model, level, period label, observed share or None) rows: observed coverage per test period, one line
    per model and level, with the nominal level dashed."""
    frame = pd.DataFrame(rows, columns=["model", "level", "period", "observed"])
    periods = list(dict.fromkeys(frame["period"]))
    models = list(dict.fromkeys(frame["model"]))
    figure_, (axis,) = figure(width=9.0)
    x = np.arange(len(periods))
    for (model, level), group in frame.groupby(["model", "level"], sort=False):
        observed = group.set_index("period")["observed"].reindex(periods).astype(float)
        color = model_color(models, model)
        axis.plot(x, 100 * observed.to_numpy(), marker="o", color=color,
                  alpha=0.5 + 0.5 * (level == frame["level"].max()), label=literal(f"{model} {level}% band"))
        axis.axhline(level, color=color, linestyle=":", linewidth=1)
    _period_ticks(axis, [str(p) for p in periods])
    axis.set_ylim(0, 105)
    axis.set_xlabel("test period")
    axis.set_ylabel("actuals inside the band (%)")
    axis.set_title("Interval coverage out of sample: observed (points) vs nominal (dotted)")
    _legend_outside(axis)
    return png(figure_)


def plot_ledger(counts: pd.Series) -> bytes:
    figure_, (axis,) = figure(height=max(2.0, 0.45 * len(counts) + 1.2))
    labels = [literal(f"{status}: {reason}" if reason else status) for status, reason in counts.index]
    colors = {"trained": "#2ca02c", "skipped": "#bcbd22", "failed": "#d62728"}
    axis.barh(labels, counts.to_numpy(), color=[colors.get(s, "#7f7f7f") for s, _ in counts.index])
    for y, value in enumerate(counts.to_numpy()):
        axis.text(value, y, f" {value}", va="center")
    axis.set_xlim(0, max(counts.max(), 1) * 1.15)  # room for the value labels
    axis.invert_yaxis()
    axis.set_xlabel("key x windows")
    axis.set_title("Ledger: key x windows by status and reason")
    return png(figure_)
