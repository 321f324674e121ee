"""A finished run's scores, from metrics/ (one row per key x window x model): per model and test
period, per model and key, and the verdict against the naive baseline. The terminal summary
(pipeline.record.run_summary) and the report (pipeline.record.report) read the same numbers.

RMSEs are pooled from the per key x window metrics: the squared errors of a window sum to
rmse^2 x rows_test. MASE, sMAPE and WAPE (when the metrics have them) are means over the key x windows.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from pipeline.utils import periods

SINGLE_MODEL = "model"  # the model column's value when metrics/ has none (runs from before it existed)
MEAN_METRICS = ("mase", "smape", "wape")  # averaged over key x windows, when present


def period_text(value, unit: str | None) -> str:
    """How people read a period: 2021-03 for month 24254 with --period=month, else the integer."""
    try:
        return periods.label(int(value), unit) if unit else str(int(value))
    except (TypeError, ValueError):
        return str(value)


def _with_model(metrics: pd.DataFrame) -> pd.DataFrame:
    return metrics if "model" in metrics else metrics.assign(model=SINGLE_MODEL)


def _pooled(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    n = frame["rows_test"].astype(float)
    sums = frame.assign(n=n, sse=frame["rmse"].astype(float) ** 2 * n,
                        base_sse=frame["baseline_rmse"].astype(float) ** 2 * n)
    extra = [m for m in MEAN_METRICS if m in frame]
    grouped = sums.groupby(by, sort=True)
    out = grouped[["n", "sse", "base_sse"]].sum()
    out = pd.DataFrame({"windows": grouped.size(), "rows": out["n"].astype(int),
                        "rmse": np.sqrt(out["sse"] / out["n"]), "baseline_rmse": np.sqrt(out["base_sse"] / out["n"])})
    for metric in extra:
        out[metric] = grouped[metric].mean()
    return out


def by_period(metrics: pd.DataFrame, unit: str | None = None) -> pd.DataFrame:
    """One row per model and test start: windows, rows, rmse, baseline_rmse (+ mase, ... when present),
    and `test`, the test start as people read it."""
    if not len(metrics):
        return pd.DataFrame(columns=["model", "test_start", "test", "windows", "rows", "rmse", "baseline_rmse"])
    out = _pooled(_with_model(metrics), ["model", "test_start"]).reset_index()
    return out.assign(test=[period_text(v, unit) for v in out["test_start"]])


def by_key(metrics: pd.DataFrame, key_column: str) -> pd.DataFrame:
    """One row per model and key (index model, key): rows, rmse, baseline_rmse (+ mase, ... when present)."""
    return _pooled(_with_model(metrics), ["model", key_column])


def models_of(metrics: pd.DataFrame, declared: str | None = None) -> list[str]:
    """The models of metrics/, in the order --model lists them (`declared`), then any other."""
    if not len(metrics):
        return []
    found = set(_with_model(metrics)["model"])
    listed = [m for m in (declared or "").split(",") if m in found]
    return listed + sorted(found - set(listed))


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One model against the naive baseline over every test prediction."""

    model: str
    rmse: float
    baseline_rmse: float
    keys: int
    keys_beating: int

    @property
    def loses(self) -> bool:
        return bool(self.rmse >= self.baseline_rmse)

    def sentence(self) -> str:
        word = "LOSES TO" if self.loses else "beats"
        return (f"{self.model} {word} the naive baseline: RMSE {fmt(self.rmse)} vs {fmt(self.baseline_rmse)} "
                f"overall; better than the baseline on {self.keys_beating} of {self.keys} keys")


def verdicts(metrics: pd.DataFrame, key_column: str, declared: str | None = None) -> list[Verdict]:
    if not len(metrics):
        return []
    frame = _with_model(metrics)
    overall = _pooled(frame, ["model"])
    keyed = by_key(frame, key_column)
    out = []
    for model in models_of(frame, declared):
        keys = keyed.loc[model]
        out.append(Verdict(model, float(overall.at[model, "rmse"]), float(overall.at[model, "baseline_rmse"]),
                           len(keys), int((keys["rmse"] < keys["baseline_rmse"]).sum())))
    return out


def warning_lines(found: list[Verdict]) -> list[str]:
    """The loud lines: every model that loses to the naive baseline over all its test predictions."""
    losing = [v for v in found if v.loses]
    if not losing:
        return []
    everyone = len(losing) == len(found)
    lines = [f"WARNING: {v.sentence()}." for v in losing]
    if everyone:
        lines.append("WARNING: predicting each key's last training period would have done better than "
                     + ("the model" if len(found) == 1 else "every model") + ": check the features, the windows "
                     "and the model before using these predictions.")
    return lines


def fmt(value) -> str:
    """A number as people read it: 4 significant digits, thousands separated, huge values in e-notation."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not np.isfinite(number):
        return "" if np.isnan(number) else ("inf" if number > 0 else "-inf")
    if number != 0 and (abs(number) >= 1e9 or abs(number) < 1e-3):
        return f"{number:.3g}"
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    return f"{number:.4g}"
