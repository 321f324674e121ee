"""Split-conformal intervals from each key's own backtest residuals (--interval_levels=80,95).

Scores: the absolute residuals |actual - predicted| of one key and one model in its backtest windows,
pooled over the windows' test periods and dates. For a level L (alpha = 1 - L/100) and n scores the band
is `predicted +/- q`, where q is the k-th smallest score with the finite-sample correction

    k = ceil((n + 1) * (1 - alpha))

(the test point counted as if it were among the scores). This covers the actual with probability at
least L% when the scores and the new error are exchangeable; numpy's plain quantile (no +1) cannot reach
L% with few scores. When k > n (too few scores: n < L/(100-L), e.g. 4 for 80%, 19 for 95%) the band
is infinite: its bounds are written as null (absent), and `calibration_residuals` says how many
scores there were.

- Backtest predictions: a window's band uses only residuals of the key's earlier windows of the same
  model whose test periods all end before this window's first test period, so no actual it is scored on
  has been seen. A key's first window has no band (null bounds, 0 residuals).
- Forecasts: every backtest window of the key's chosen model (they all end before the forecast periods).
- Coverage, out of sample: the share of actuals inside each band, over backtest rows that have a finite
  band (rows with an infinite or no band are counted apart, `rows_unbounded`): per key x window in
  metrics/ (`coverage_<L>`), per model, level and test period and overall in summary.json (`intervals`)
  and the report.

`--interval_method=model`: a statistical model (pipeline.models.statistical; a single one, not a
combination) gives its bands itself, statsforecast's own prediction intervals (mean +/- z * sigma_h from
the model's fitted error distribution) in every backtest window, a key's first included, and forecast;
every other candidate keeps the conformal bands. Each banded row says which it got (`interval_source`:
model or conformal; `calibration_residuals` 0 for the model's), and summary.json's `intervals` counts the
rows of each per model (`source_rows`). Coverage is measured the same way for both.

The guarantee is marginal and assumes exchangeable errors: trends, shifts or a changing relation between
features and target break it, and errors within a window are correlated (the effective number of scores
is smaller). Choosing the model on the same windows whose residuals calibrate its forecast band makes
those residuals look small; the backtest coverage (each window calibrated on earlier ones only) is the
honest check.
"""

from __future__ import annotations

import math

import apache_beam as beam
import numpy as np
import pandas as pd

from pipeline.models import model_fit
from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.stages.fit import train
from pipeline.utils.counters import SumCounters
from pipeline.stages.prepare.windows import WindowPlan

CALIBRATION = "calibration_residuals"
SOURCE = "interval_source"  # with --interval_method=model: which method made a row's band
CONFORMAL, MODEL = "conformal", model_fit.MODEL_INTERVALS
METHOD = ("split conformal, symmetric: predicted +/- the k-th smallest of the key's n earlier absolute "
          "residuals of the same model, k = ceil((n+1)(1-alpha)); no band (infinite) when k > n")
MODEL_METHOD = ("statistical models: statsforecast's own prediction intervals (mean +/- z * sigma_h), fitted "
                "in each window; other models: " + METHOD)


def is_enabled(params: PipelineParams) -> bool:
    return bool(params.interval_levels)


def check_params(params: PipelineParams) -> None:
    levels = params.interval_levels
    if any(not 0 < level < 100 for level in levels) or len(set(levels)) != len(levels):
        raise ParameterError("interval_levels", ",".join(map(str, levels)),
                             "distinct integers between 1 and 99 (coverage levels in percent), e.g. 80,95")
    if params.interval_method not in (CONFORMAL, MODEL):
        raise ParameterError("interval_method", params.interval_method, f"one of {CONFORMAL}, {MODEL}")
    if params.interval_method == MODEL and not levels:
        raise ParameterError("interval_method", params.interval_method,
                             f"{CONFORMAL} unless --interval_levels names the levels of the bands")


def model_bands(params: PipelineParams) -> bool:
    """Whether the statistical models give their own bands (--interval_method=model)."""
    return is_enabled(params) and params.interval_method == MODEL


def _has_model_bands(frame: pd.DataFrame, levels) -> bool:
    """A prediction frame whose bands its model made (the fit added them: pipeline.models.model_fit)."""
    return all(name in frame for level in levels for name in bound_names(level))


def _banded(frame: pd.DataFrame, scores: np.ndarray, params: PipelineParams) -> pd.DataFrame:
    """`frame` with its bands: the model's own when it has them, else conformal from `scores`."""
    if model_bands(params) and _has_model_bands(frame, params.interval_levels):
        return frame.assign(**{CALIBRATION: np.zeros(len(frame), dtype=np.int64),
                               SOURCE: np.full(len(frame), MODEL, dtype=object)})
    banded = frame.assign(**band_columns(frame["predicted"].to_numpy(dtype=float), scores, params.interval_levels))
    return banded.assign(**{SOURCE: np.full(len(frame), CONFORMAL, dtype=object)}) if model_bands(params) else banded


def bound_names(level: int) -> tuple[str, str]:
    return f"lower_{level}", f"upper_{level}"


def half_width(scores: np.ndarray, level: int) -> float:
    """The k-th smallest score, k = ceil((n+1)(1-alpha)); inf when k > n (or no score)."""
    n = len(scores)
    k = -(-(n + 1) * level // 100)  # ceil((n + 1) * level / 100) in integers: (1 - alpha) = level / 100
    if n == 0 or k > n:
        return math.inf
    return float(np.partition(scores, k - 1)[k - 1])


def band_columns(predicted: np.ndarray, scores: np.ndarray, levels) -> dict:
    """{lower_L, upper_L: arrays (NaN where infinite), calibration_residuals: n}."""
    columns = {}
    for level in levels:
        q = half_width(scores, level)
        lower, upper = bound_names(level)
        columns[lower] = predicted - q if math.isfinite(q) else np.full(len(predicted), np.nan)
        columns[upper] = predicted + q if math.isfinite(q) else np.full(len(predicted), np.nan)
    columns[CALIBRATION] = np.full(len(predicted), len(scores), dtype=np.int64)
    return columns


def residuals(frames: list[pd.DataFrame]) -> np.ndarray:
    if not frames:
        return np.array([], dtype=float)
    return np.concatenate([np.abs(f["actual"].to_numpy(dtype=float) - f["predicted"].to_numpy(dtype=float))
                           for f in frames])


def add_forecast_bands(frame: pd.DataFrame, predictions: list[pd.DataFrame], model: str,
                       params: PipelineParams, own_bands: dict | None = None) -> pd.DataFrame:
    """A key's forecast rows with the bands of the chosen model's backtest residuals (every window), or with
    `own_bands`, the fitted model's own (--interval_method=model)."""
    if not is_enabled(params):
        return frame
    scores = residuals([f for f in predictions if len(f) and f["model"].iloc[0] == model])
    return _banded(frame.assign(**(own_bands or {})) if model_bands(params) else frame, scores, params)


def band_key_model(frames: list[pd.DataFrame], metric_rows: list[dict], params: PipelineParams,
                   plan: WindowPlan) -> tuple[list[pd.DataFrame], list[dict]]:
    """One key x model's prediction frames (one per window) -> the same with bands from earlier windows,
    and its metric rows with the window's coverage per level."""
    by_start = {int(f["window_start"].iloc[0]): f for f in frames if len(f)}
    coverage = {}
    out = []
    for start, frame in sorted(by_start.items()):
        earlier = [f for s, f in by_start.items() if plan.end_of(s) < plan.test_start(start)]
        banded = _banded(frame, residuals(earlier), params)
        out.append(banded)
        coverage[start] = {level: window_coverage(banded, level) for level in params.interval_levels}
    metrics = []
    for row in metric_rows:
        by_level = coverage.get(int(row["window_start"]), {})
        metrics.append({**row, **{f"coverage_{level}": by_level.get(level) for level in params.interval_levels}})
    return out, metrics


def window_coverage(frame: pd.DataFrame, level: int) -> float | None:
    lower, upper = (frame[name].to_numpy(dtype=float) for name in bound_names(level))
    bounded = np.isfinite(lower) & np.isfinite(upper)
    if not bounded.any():
        return None
    actual = frame["actual"].to_numpy(dtype=float)[bounded]
    return float(((actual >= lower[bounded]) & (actual <= upper[bounded])).mean())


def coverage_counters(frame: pd.DataFrame, params: PipelineParams) -> dict:
    """summary.json counters of one banded prediction frame: per model, level and test period, the rows
    with a finite band, those inside it, and the rows without one."""
    model = str(frame["model"].iloc[0]) if len(frame) else ""
    actual = frame["actual"].to_numpy(dtype=float)
    periods = frame[params.time_column].to_numpy()
    out = {}
    for level in params.interval_levels:
        lower, upper = (frame[name].to_numpy(dtype=float) for name in bound_names(level))
        bounded = np.isfinite(lower) & np.isfinite(upper)
        inside = bounded & (actual >= lower) & (actual <= upper)
        per_period = {}
        for period in np.unique(periods).tolist():
            at = periods == period
            per_period[str(period)] = {"rows": int((bounded & at).sum()), "inside": int((inside & at).sum()),
                                       "unbounded": int((~bounded & at).sum())}
        out[str(level)] = per_period
    counters = {"interval_coverage": {model: out}}
    if SOURCE in frame:
        sources, rows = np.unique(frame[SOURCE].to_numpy(dtype=str), return_counts=True)
        counters["interval_sources"] = {model: dict(zip(sources.tolist(), rows.astype(float).tolist()))}
    return counters


def coverage_document(totals: dict, params: PipelineParams) -> dict:
    """summary.json's `intervals` from the summed coverage counters."""
    coverage = {}
    for model, by_level in sorted(totals.get("interval_coverage", {}).items()):
        coverage[model] = {}
        for level in map(str, params.interval_levels):
            per_period = by_level.get(level, {})
            periods = sorted(per_period, key=int)
            rows = sum(per_period[p]["rows"] for p in periods)
            inside = sum(per_period[p]["inside"] for p in periods)
            coverage[model][level] = {
                "overall": inside / rows if rows else None, "rows": rows,
                "rows_unbounded": sum(per_period[p]["unbounded"] for p in periods),
                "by_test_period": {p: (per_period[p]["inside"] / per_period[p]["rows"]
                                       if per_period[p]["rows"] else None) for p in periods},
                "rows_by_test_period": {p: per_period[p]["rows"] for p in periods},
            }
    document = {"levels": list(params.interval_levels), "method": MODEL_METHOD if model_bands(params) else METHOD,
                "interval_method": params.interval_method, "coverage_out_of_sample": coverage}
    if model_bands(params):  # backtest rows per model and source of their bands
        document["source_rows"] = {model: {source: int(n) for source, n in sorted(by_source.items())}
                                   for model, by_source in sorted(totals.get("interval_sources", {}).items())}
    return document


class _BandFn(beam.DoFn):
    def __init__(self, params: PipelineParams):
        self._params, self._plan = params, WindowPlan.from_params(params)

    def process(self, element):
        _, joined = element
        frames, metrics = band_key_model(list(joined["predictions"]), list(joined["metrics"]), self._params,
                                         self._plan)
        yield from frames
        for row in metrics:
            yield beam.pvalue.TaggedOutput(train.METRICS, row)


def add_bands(params: PipelineParams, outputs: dict) -> dict:
    """The run's predictions and metrics with the bands and coverage of --interval_levels
    (pipeline.run.build, right after the fits)."""
    key_column = params.key_column
    joined = {
        "predictions": outputs[train.PREDICTIONS] | "KeyModelPredictions" >> beam.Map(
            lambda f: ((f[key_column].iloc[0], f["model"].iloc[0]), f)),
        "metrics": outputs[train.METRICS] | "KeyModelMetrics" >> beam.Map(
            lambda row: ((row[key_column], row["model"]), row)),
    }
    banded = (joined
              | "IntervalsJoinPerKeyModel" >> beam.CoGroupByKey()
              | "IntervalBands" >> beam.ParDo(_BandFn(params)).with_outputs(train.METRICS, main=train.PREDICTIONS))
    return {train.PREDICTIONS: banded[train.PREDICTIONS], train.METRICS: banded[train.METRICS]}


class Coverage(beam.PTransform):
    """Banded prediction frames -> summary.json's `intervals` document (a singleton)."""

    def __init__(self, params: PipelineParams):
        super().__init__()
        self._params = params

    def expand(self, predictions):
        params = self._params
        return (predictions
                | "CoverageCounters" >> beam.Map(coverage_counters, params)
                | "SumCoverage" >> beam.CombineGlobally(SumCounters())
                | "CoverageDocument" >> beam.Map(coverage_document, params))
