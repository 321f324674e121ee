"""The recursive horizon of a fitted model: a split's test rows predicted step by step when the model's
inputs include target-history features (pipeline.stages.prepare.target_history.Recursion)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def fill_unknown(matrix: np.ndarray, columns: list[int], values: np.ndarray) -> None:
    """Unknown (NaN) entries of `columns` <- the column's value in `values`, in place."""
    part = matrix[:, columns]
    unknown = np.isnan(part)
    if unknown.any():
        matrix[:, columns] = np.where(unknown, values, part)


class RecursiveTest:
    """A split's test rows for a fitted model: `test(predict)` -> the predictions, made step by step
    (target_history.Recursion), unknown values imputed with `means` (None: left missing). Picklable:
    a --group_timeout_s helper process receives it with the split's matrices."""

    def __init__(self, recursion, matrix: np.ndarray, columns: list[int], means: np.ndarray | None):
        self.recursion, self.matrix, self.columns, self.means = recursion, matrix, columns, means

    def __call__(self, predict) -> np.ndarray:
        fill = (lambda m: fill_unknown(m, self.columns, self.means)) if self.means is not None else (lambda m: None)
        return self.recursion.predict(predict, self.matrix, self.columns, fill)

    def framed(self, feature_columns: list[str]) -> "_FramedRecursiveTest":
        """The same, for an estimator that predicts from DataFrames of the feature columns."""
        return _FramedRecursiveTest(self, feature_columns)


class _FramedRecursiveTest:
    def __init__(self, test: RecursiveTest, feature_columns: list[str]):
        self._test, self._columns = test, feature_columns

    def __call__(self, predict) -> np.ndarray:
        return self._test(lambda matrix: predict(pd.DataFrame(matrix, columns=self._columns)))
