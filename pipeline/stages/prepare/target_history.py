"""Lags and rolling means of a key's target, and the recursive horizon that keeps them on test rows.

Every target-history feature is the mean of the key's known targets over a range of positions before
the row: `lag_<k>` over [p - k, p - k], `rolling_mean_<w>` over [p - w, p - 1], where p is the row's
position in steps of the key's frequency (`--lags`, `--rolling_means`: pipeline.utils.periods.steps,
calendar-aware) or in days (`--lag_days`, `--rolling_mean_days`). A position without a row, or whose
target is unknown, contributes nothing: a lag onto a missing row is unknown (NaN), not the previous
row's value. Each feature column comes with a hidden count column (`__n_<name>`, the known values it
averages) and the positions (`__step`, `__day`), so that a test row's features can be rebuilt for any
cutoff without the rows before the window.

The horizon strategy is recursive (`Recursion`): the model is fitted once on the training rows; test
rows are predicted in date order, and a test row whose range reaches test rows takes their
*predictions* in place of their actuals (which are removed from the precomputed sums), so `lag_1`
of the 18th test month is the 17th month's prediction, not an unknown. Rows whose ranges hold no
pending test row are predicted together (one predict call per generation: with `--lag_days=364` and
a test year, two calls). No actual at or after the cutoff reaches a test row's features.
"""

from __future__ import annotations

import dataclasses

import numpy as np

STEP_COLUMN, DAY_COLUMN = "__step", "__day"
COUNT_PREFIX = "__n_"


@dataclasses.dataclass(frozen=True)
class TargetFeature:
    kind: str  # "lag" or "rolling_mean"
    size: int  # k steps (lag) or w steps (rolling mean)
    position_column: str  # STEP_COLUMN (steps of the key's frequency) or DAY_COLUMN (days)

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.size}"

    @property
    def count_column(self) -> str:
        return f"{COUNT_PREFIX}{self.name}"

    @property
    def offsets(self) -> tuple[int, int]:
        """(first, last): the range [p - first, p - last] of positions the feature averages."""
        return (self.size, self.size) if self.kind == "lag" else (self.size, 1)


def compute(positions: np.ndarray, values: np.ndarray, feature: TargetFeature) -> tuple[np.ndarray, np.ndarray]:
    """(feature value, number of known values averaged) for each row of one key; rows may share a position."""
    positions = np.asarray(positions, dtype=np.int64)
    first, last = feature.offsets
    origin = int(positions.min()) - first
    index = positions - origin
    known = ~np.isnan(values)
    size = int(index.max()) + 1
    sums = np.bincount(index[known], weights=values[known], minlength=size)
    counts = np.bincount(index[known], minlength=size)
    if first == last:  # a lag: the value itself (exact), not a difference of running sums
        total, n = sums[index - first], counts[index - first]
    else:
        sums, counts = np.concatenate([[0.0], np.cumsum(sums)]), np.concatenate([[0], np.cumsum(counts)])
        begin, end = index - first, index - last + 1
        total, n = sums[end] - sums[begin], counts[end] - counts[begin]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan), n.astype(float)


class Recursion:
    """The target-history features of a split's test rows, as known at the cutoff plus predictions.

    `positions`, `values`, `counts`: per feature, the test rows' positions, precomputed values and
    counts (over the key's whole history); `actuals`: the test rows' targets (NaN for rows to
    forecast), whose contributions are removed. Test rows are in date order."""

    def __init__(self, offsets: list[tuple[int, int]], positions: list[np.ndarray], values: list[np.ndarray],
                 counts: list[np.ndarray], actuals: np.ndarray):
        actuals = np.asarray(actuals, dtype=float)
        known = ~np.isnan(actuals)
        actual_sums = np.concatenate([[0.0], np.cumsum(np.where(known, actuals, 0.0))])
        actual_counts = np.concatenate([[0], np.cumsum(known)])
        self.n_rows = len(actuals)
        self._ranges, self._known_sum, self._known_n, self._precomputed, self._untouched = [], [], [], [], []
        for (first, last), position, value, count in zip(offsets, positions, values, counts):
            lo = np.searchsorted(position, position - first, side="left")
            hi = np.searchsorted(position, position - last, side="right")
            removed_n = actual_counts[hi] - actual_counts[lo]
            self._ranges.append((lo, hi))
            known_n = count - removed_n
            self._known_sum.append(np.where(known_n > 0, np.nan_to_num(value) * count
                                            - (actual_sums[hi] - actual_sums[lo]), 0.0))
            self._known_n.append(known_n)
            self._precomputed.append(value)
            self._untouched.append((removed_n == 0) & (hi == lo))  # nothing at or after the cutoff in range
        self.generation = self._generations()

    @classmethod
    def of(cls, features: list[TargetFeature], column, actuals: np.ndarray) -> "Recursion":
        """From the test rows' columns (`column(name)` -> array): positions, feature values and counts."""
        return cls([f.offsets for f in features],
                   [np.asarray(column(f.position_column), dtype=np.int64) for f in features],
                   [np.asarray(column(f.name), dtype=float) for f in features],
                   [np.asarray(column(f.count_column), dtype=float) for f in features], actuals)

    def _generations(self) -> np.ndarray:
        """0 for a row whose ranges hold no test row, else 1 + the highest generation among them."""
        generation = np.zeros(self.n_rows, dtype=np.int64)
        pending = [np.flatnonzero(hi > lo) for lo, hi in self._ranges]
        rows = np.unique(np.concatenate(pending)) if pending else np.array([], dtype=np.int64)
        for row in rows.tolist():  # in date order: every source row is earlier
            generation[row] = 1 + max(int(generation[lo[row]:hi[row]].max()) for lo, hi in self._ranges
                                      if hi[row] > lo[row])
        return generation

    def values(self, rows: np.ndarray, predictions: np.ndarray | None) -> np.ndarray:
        """The features (one column per feature) of `rows`, with `predictions` of the test rows their ranges
        reach (every one predicted already); None: the values known at the cutoff alone (NaN when none)."""
        out = np.empty((len(rows), len(self._ranges)))
        if predictions is not None:
            predicted_sums = np.concatenate([[0.0], np.cumsum(np.nan_to_num(predictions))])
        for column, (lo, hi) in enumerate(self._ranges):
            lo, hi = lo[rows], hi[rows]
            total = self._known_sum[column][rows]
            n = self._known_n[column][rows].copy()
            if predictions is not None:
                total = total + predicted_sums[hi] - predicted_sums[lo]
                n += hi - lo
            with np.errstate(invalid="ignore", divide="ignore"):
                rebuilt = np.where(n > 0, total / np.maximum(n, 1), np.nan)
            out[:, column] = np.where(self._untouched[column][rows], self._precomputed[column][rows], rebuilt)
        return out

    def unknown(self) -> int:
        """How many test-row feature values stay unknown even with every prediction (to impute)."""
        return int(sum(((self._known_n[c] + hi - lo) <= 0).sum() for c, (lo, hi) in enumerate(self._ranges)))

    def predict(self, predict, test_matrix: np.ndarray, columns: list[int], fill) -> np.ndarray:
        """Predictions of every test row, generation by generation. `test_matrix`: the test rows' model
        inputs (its `columns` are rebuilt here); `fill(matrix)`: imputes unknown values in place."""
        predictions = np.full(self.n_rows, np.nan)
        for generation in range(int(self.generation.max()) + 1 if self.n_rows else 0):
            rows = np.flatnonzero(self.generation == generation)
            matrix = test_matrix[rows]
            matrix[:, columns] = self.values(rows, predictions if generation else None)
            fill(matrix)
            predictions[rows] = np.asarray(predict(matrix), dtype=float).reshape(-1)
        return predictions
