"""The peer's side of combinations and selection in `make bench-forecast`: what statsforecast's forecasts
give when combined and chosen with our rules (pipeline.stages.decide.selection_rules) on its own backtests.

statsforecast has no combination or per-series choice of its own (its docs show the per-series argmin of a
backtest metric as a recipe); so the peer's row for `theta+ets` is the plain mean of its Theta and AutoETS
forecasts, and its row for `choice (auto)` is, per series, the forecast of the candidate our `auto` rule
keeps when fed the peer's `cross_validation` windows scored by MASE as our pipeline scores them (the
window's actuals over the in-sample seasonal naive MAE of every period before the window, the expanding
training span). Only the backtest windows decide; the hold-out never does.
"""

from __future__ import annotations

import numpy as np

from bench import forecast_data
from pipeline.models import combination
from pipeline.stages.decide import selection_rules as rules


def candidate(per_model: dict[str, dict], name: str) -> dict | None:
    """{series: values} of a single model or a combination (mean of its members), from
    {model: {series: values}}; None when a member is missing."""
    members = combination.members(name)
    if not all(m in per_model for m in members):
        return None
    keys = set.intersection(*(set(per_model[m]) for m in members))
    return {k: combination.mean_of([per_model[m][k] for m in members]) for k in keys}


def window_scores(s: forecast_data.Series, backtests: dict[str, list[np.ndarray]]) -> dict[int, dict[str, float]]:
    """{window: {candidate: MASE}} of one series, windows numbered from the series' end (-1: the last, one
    horizon before it; a short series may have fewer windows than the others, the same numbers mean the
    same place); `backtests` {candidate: [forecast of the oldest window, ...]}, each one horizon long."""
    out: dict[int, dict[str, float]] = {}
    for name, windows in backtests.items():
        for index, predicted in enumerate(windows):
            position = index - len(windows)
            cutoff = len(s.train) + position * s.horizon
            value = forecast_data.mase(s.train[cutoff:cutoff + s.horizon], np.asarray(predicted, dtype=float),
                                       s.train[:cutoff], s.season)
            if np.isfinite(value):
                out.setdefault(position, {})[name] = value
    return out


def choices(series: list[forecast_data.Series], backtests: dict[str, dict[str, list]], names: list[str],
            rule: str) -> dict[str, str]:
    """{series: the candidate `rule` keeps} from every candidate's backtests ({candidate: {series: windows}})."""
    scores = {s.name: {w: by for w, by in window_scores(s, {n: backtests[n][s.name] for n in names
                                                         if s.name in backtests[n]}).items()
                       if set(by) >= set(names)}
              for s in series}
    pooled: dict = {}
    for windows in scores.values():
        for window, by in windows.items():
            bucket = pooled.setdefault(str(window), {})
            for name, value in by.items():
                total = bucket.setdefault(name, {"sum": 0.0, "n": 0})
                total["sum"] += value
                total["n"] += 1
    overall = rules.global_choice(pooled, names)
    picked = {key: rules.rule_choice(rule, windows, names, overall)[0] for key, windows in scores.items()}
    return {key: name for key, name in picked.items() if name}


def chosen_forecasts(picked: dict[str, str], forecasts: dict[str, dict]) -> dict:
    """{series: the forecast of its chosen candidate} ({candidate: {series: values}})."""
    return {key: forecasts[name][key] for key, name in picked.items() if key in forecasts.get(name, {})}
