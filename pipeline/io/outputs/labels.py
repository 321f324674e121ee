"""Readable period labels on the outputs, next to the integers the windows use: `period_label` (a
row's period), `window_label`, `train_label` and `test_label` (spans, `first..last`, or one label
when they are one period). With --period the labels read as people read periods (2021, 2021-Q1,
2021-03, 2021-W05, 2021-03-14: pipeline.utils.periods); with an integer period column, as the integer.
The sinks fill them from the integer columns of each output, so every stage that makes rows needs
to know nothing of them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from pipeline.utils import periods

PERIOD_LABEL = "period_label"
# label column -> (first, last) integer columns; the last falls back to window_end (metrics have no test_end)
SPANS = {"window_label": ("window_start", "window_end"), "train_label": ("train_start", "train_end"),
         "test_label": ("test_start", "test_end")}


@dataclasses.dataclass(frozen=True)
class Labeller:
    """How one run labels its periods: `unit` is --period (empty: the integer as text)."""

    unit: str
    time_column: str

    @classmethod
    def from_params(cls, params) -> "Labeller":
        return cls(params.period, params.time_column)

    def texts(self, values) -> np.ndarray:
        """Labels of integer periods (None where a value is missing)."""
        values = pd.Series(values, dtype="Float64")
        known = values.notna().to_numpy()
        out = np.full(len(values), None, dtype=object)
        if known.any():
            distinct, inverse = np.unique(values[known].astype("int64").to_numpy(), return_inverse=True)
            texts = [periods.label(v, self.unit) if self.unit else str(v) for v in distinct.tolist()]
            out[known] = np.array(texts, dtype=object)[inverse]
        return out

    def span(self, first, last) -> np.ndarray:
        first_labels, last_labels = self.texts(first), self.texts(last)
        same = pd.Series(first).to_numpy() == pd.Series(last).to_numpy()
        return np.array([a if a is None or b is None or equal else f"{a}..{b}"
                         for a, b, equal in zip(first_labels, last_labels, same)], dtype=object)

    def fill(self, frame: pd.DataFrame, names) -> pd.DataFrame:
        """`frame` with every label column of `names` it lacks, from its integer columns."""
        added = {}
        if PERIOD_LABEL in names and PERIOD_LABEL not in frame and self.time_column in frame:
            added[PERIOD_LABEL] = self.texts(frame[self.time_column])
        for name, (first, last) in SPANS.items():
            if name in names and name not in frame and first in frame:
                last = last if last in frame else "window_end"
                added[name] = self.span(frame[first], frame[last]) if last in frame else self.texts(frame[first])
        return frame.assign(**added) if added else frame
