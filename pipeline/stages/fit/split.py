"""One key x window's rows cut into training and test periods (`WindowSplit`), and whether the window is
eligible to train (`split_window`: the ledger row it starts with, trained or skipped with its reason)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd

from pipeline.models import model_fit, registry, statistical
from pipeline.params.values import PipelineParams
from pipeline.stages.fit.recursive import RecursiveTest, fill_unknown
from pipeline.stages.prepare import features, target_history
from pipeline.stages.prepare.windows import WindowPlan

TRAINED, SKIPPED, FAILED = "trained", "skipped", "failed"


class WindowSplit:
    """One key x window's rows in date order, cut into the training and the test periods.

    The frames are views made on first use; `arrays` gives the registry models their
    matrices from one conversion of the window, not one per frame.

    With target-history features (`target_features`), the test rows are predicted recursively
    (pipeline.stages.prepare.target_history.Recursion), and unknown values are imputed, for the models that
    take no missing value, with the training mean of the column (0.0 when the column has no known
    training value)."""

    def __init__(self, data: pd.DataFrame, time_column: str, test_start: int,
                 target_features: tuple = (), target: str | None = None):
        self.data, self._values, self._arrays, self._derived = data, {}, {}, {}
        self._target_features, self._target = list(target_features), target
        self.is_test = self.values(time_column) >= test_start
        self.rows_test = int(self.is_test.sum())
        self.rows_train = len(data) - self.rows_test
        # The usual layout: test periods last. Then both parts are slices, not copies.
        self._contiguous = not self.is_test[:self.rows_train].any()

    def _part(self, test: bool) -> pd.DataFrame:
        if self._contiguous:
            return self.data.iloc[self.rows_train:] if test else self.data.iloc[:self.rows_train]
        return self.data.loc[self.is_test if test else ~self.is_test]

    @functools.cached_property
    def train(self) -> pd.DataFrame:
        return self._part(test=False)

    @functools.cached_property
    def test(self) -> pd.DataFrame:
        return self._part(test=True)

    def values(self, name: str) -> np.ndarray:
        """The whole window's column as an array (cached: pandas column access is not free)."""
        if name not in self._values:
            self._values[name] = self.data[name].to_numpy()
        return self._values[name]

    def derived(self, key: tuple, compute):
        """`compute()`, once per split and `key`: what several steps of one fit read from the same rows
        (the key's frequency and steps: the eligibility rule, the model and the seasonal baseline)."""
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]

    def column(self, name: str, test: bool) -> np.ndarray:
        values = self.values(name)
        if self._contiguous:
            return values[self.rows_train:] if test else values[:self.rows_train]
        return values[self.is_test if test else ~self.is_test]

    def arrays(self, feature_columns: list[str], target: str, impute: bool = True) -> tuple:
        """(X train, y train, X test) as float arrays, column-major like pandas' own (tree learners
        scan columns); converted once per split (the search fits many configurations on one). With
        target-history features, "X test" is a RecursiveTest: called with the fitted model's predict,
        it predicts the test rows. `impute`: replace unknown values (else they stay NaN)."""
        cache_key = (tuple(feature_columns), target, impute)
        if cache_key not in self._arrays:
            x_train, y_train, x_test = self._convert(feature_columns, target)
            history = [feature_columns.index(f.name) for f in self._target_features]
            means = None
            if history and impute:
                known = ~np.isnan(x_train[:, history])
                sums = np.where(known, x_train[:, history], 0.0).sum(axis=0)
                means = np.where(known.any(axis=0), sums / np.maximum(known.sum(axis=0), 1), 0.0)
                x_train = x_train.copy(order="F")
                fill_unknown(x_train, history, means)
            if history and self.rows_test:
                x_test = RecursiveTest(self.recursion, x_test, history, means)
            self._arrays[cache_key] = x_train, y_train, x_test
        return self._arrays[cache_key]

    @functools.cached_property
    def recursion(self) -> target_history.Recursion:
        """The test rows' target-history features as known at the cutoff, and how to predict them."""
        return target_history.Recursion.of([f for f in self._target_features], lambda name: self.column(name, True),
                                           self.column(self._target, test=True).astype(float))

    def unknown_values(self, feature_columns: list[str]) -> int:
        """Target-history values of the model's inputs that no known target or prediction gives (imputed
        for a model that takes no missing value)."""
        names = [f.name for f in self._target_features]
        if not names:
            return 0
        train = sum(int(np.isnan(self.column(name, test=False).astype(float)).sum()) for name in names)
        return train + (self.recursion.unknown() if self.rows_test else 0)

    def test_as_known(self) -> pd.DataFrame:
        """The test rows with their target-history features as known at the cutoff (NaN where unknown)."""
        if not self._target_features or not self.rows_test:
            return self.test
        names = [f.name for f in self._target_features]
        return self.test.assign(**dict(zip(names, self.recursion.values(np.arange(self.rows_test), None).T)))

    def _convert(self, feature_columns: list[str], target: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        def matrix(test: bool) -> np.ndarray:
            # Column by column: selecting a column list from the frame costs more than fitting a ridge.
            columns = [self.column(name, test) for name in feature_columns]
            out = np.empty((self.rows_test if test else self.rows_train, len(columns)), order="F")
            for position, values in enumerate(columns):
                out[:, position] = values
            return out

        return matrix(test=False), self.column(target, test=False).astype(float, copy=False), matrix(test=True)


def split_at(data: pd.DataFrame, cutoff: int, params: PipelineParams) -> WindowSplit:
    """`data` (one key's rows in date order) cut at `cutoff`, with the run's target-history features."""
    return WindowSplit(data, params.time_column, cutoff, features.FeatureSpec.from_params(params).target_features,
                       params.target)


def split_window(key: str, window_start: int, window_data: pd.DataFrame, params: PipelineParams,
                 plan: WindowPlan, model_params: dict | None = None) -> tuple[WindowSplit, dict]:
    """(the window's split, ledger) of one key x window. The ledger's status is TRAINED while the
    group is eligible, else SKIPPED with its reason; plan-only mode applies the same rules.
    Test rows' target-history features: as known at the test start, then recursive (WindowSplit)."""
    time_column, date_column = params.time_column, params.date_column
    test_start = plan.test_start(window_start)
    if not window_data[date_column].is_monotonic_increasing:
        window_data = window_data.sort_values(date_column, kind="mergesort", ignore_index=True)
    split = split_at(window_data, test_start, params)
    periods = split.values(time_column)
    used = params.model_params if model_params is None else model_params
    ledger = {
        params.key_column: key, "window_start": window_start, "window_end": plan.end_of(window_start),
        "status": TRAINED, "reason": "", "rows_train": split.rows_train, "rows_test": split.rows_test,
        "fit_seconds": 0.0, "predict_seconds": 0.0, "error_class": "", "error_message": "",
        "model": params.model, "model_params": json.dumps(used, sort_keys=True), "run_id": params.run_id,
    }
    periods_present = len(np.unique(periods[periods >= window_start]))  # expanding: the earlier ones are extra
    train_target = split.column(params.target, test=False)
    if not len(window_data):  # key anchoring: a window that starts before the key's first period
        ledger.update(status=SKIPPED, reason="too_short_history",
                      error_message=f"the key's history starts after this window's start {window_start} "
                                    f"(window_anchor=key: its windows end at its own last period)")
    elif periods_present < plan.size:
        ledger.update(status=SKIPPED, reason="too_few_periods",
                      error_message=f"{periods_present} of {plan.size} periods present")
    elif split.rows_train < params.min_train_rows:
        ledger.update(status=SKIPPED, reason="too_few_rows",
                      error_message=f"{split.rows_train} training rows < {params.min_train_rows}")
    elif registry.uses_history(params.model) and (irregular := model_fit.irregularity(params, split)):
        ledger.update(status=SKIPPED, reason=statistical.IRREGULAR, error_message=irregular)
    elif not (train_target != train_target[:1]).any():
        # Every estimator would just echo the constant; the naive baseline already does that.
        ledger.update(status=SKIPPED, reason="constant_target",
                      error_message=f"all {split.rows_train} training targets equal {train_target[0]!r}")
    return split, ledger


