"""Combinations of models as one candidate: `--model=ridge+gbr` (a `+` joins registry or user models).

A combination's prediction is the plain mean of its members' predictions, each member fitted as it would
be alone on the same key x window (same rows, same seed, its own hyperparameters), so `a+b` equals the
mean of `a` and `b` fitted apart, bit for bit (the sum in the members' order, divided by their number).
A fixed mean of good models is hard to beat, and needs no evidence per key to choose it (bench/NOTE.md).

Hyperparameters of a combination: `--model_params` keyed by member name (`{"gbr": {"max_depth": 2}}`);
a member missing from it gets `{}`. The fitted combination (`MeanOfModels`) is what is saved and reloaded.
"""

from __future__ import annotations

import numpy as np

SEPARATOR = "+"


def candidates(model: str) -> list[str]:
    """--model's candidates in order (a comma separates them; each one a model or a combination)."""
    return [name.strip() for name in model.split(",") if name.strip()]


def members(model: str) -> list[str]:
    """A candidate's members in order (a single model is its own only member)."""
    return [name.strip() for name in model.split(SEPARATOR)] if SEPARATOR in model else [model]


def is_combination(model: str) -> bool:
    return len(members(model)) > 1


def member_params(model_params: dict, member: str) -> dict:
    """A member's hyperparameters from a combination's `--model_params` (keyed by member name)."""
    value = model_params.get(member, {}) if isinstance(model_params, dict) else {}
    return dict(value) if isinstance(value, dict) else {}


def mean_of(predictions: list[np.ndarray]) -> np.ndarray:
    """The members' predictions summed in order, then divided by their number."""
    total = np.asarray(predictions[0], dtype=float).copy()
    for predicted in predictions[1:]:
        total = total + np.asarray(predicted, dtype=float)
    return total / len(predictions)


class MeanOfModels:
    """A fitted combination: `predict(X)` is the mean of its fitted members' predictions."""

    def __init__(self, names: list[str], estimators: list):
        self.names, self.estimators = list(names), list(estimators)

    def predict(self, features):
        return mean_of([np.asarray(e.predict(features), dtype=float).reshape(-1) for e in self.estimators])

    def get_params(self, deep: bool = False) -> dict:
        return {"members": list(self.names),
                **({name: e.get_params() for name, e in zip(self.names, self.estimators)
                    if hasattr(e, "get_params")} if deep else {})}
