"""What the fit stage emits for key x windows: one window's result (`GroupResult`), and the prediction
columns of many windows joined into larger frames (`PredictionBuffer`)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd


class GroupResult:
    """What one key x window produced; plain data, easy to test without Beam. The predictions are
    kept as columns (arrays) and made a DataFrame on first use: a run whose predictions go straight
    to the sinks joins the columns of many windows into one frame instead (PredictionBuffer)."""

    def __init__(self, ledger: dict, prediction_columns: dict | None = None, metrics: dict | None = None):
        self.ledger, self.prediction_columns, self.metrics = ledger, prediction_columns, metrics

    @functools.cached_property
    def predictions(self) -> pd.DataFrame | None:
        if self.prediction_columns is None:
            return None
        return pd.DataFrame(self.prediction_columns, copy=False)


class PredictionBuffer:
    """The prediction columns of many key x windows, joined into one DataFrame of about `rows`
    rows: one frame (and one sink batch) per hundred windows instead of one per window, which
    cost more than fitting a small model."""

    def __init__(self, rows: int = 50_000):
        self._limit, self._parts, self.rows = rows, [], 0

    def add(self, columns: dict) -> pd.DataFrame | None:
        """Adds one window's columns; returns the joined frame once it holds `rows` rows."""
        self._parts.append(columns)
        self.rows += len(columns["predicted"])
        return self.take() if self.rows >= self._limit else None

    def take(self) -> pd.DataFrame | None:
        if not self._parts:
            return None
        parts, self._parts, self.rows = self._parts, [], 0
        return pd.DataFrame({name: np.concatenate([part[name] for part in parts]) for name in parts[0]},
                            copy=False)


