"""Statistical models from Nixtla's statsforecast, behind one small interface (`--model=theta,ets,...`).

They fit on the key's target history alone, in date order, and forecast h steps ahead, where a step is
one period of the key's frequency (`pipeline.utils.periods.resolve_frequency`) and a test or forecast
row's h is its step minus the last training row's step (`periods.steps`: 12 months after 2021-03-01 is
2022-03-01, 12 steps, whatever the number of days). The feature columns are not used.

    model = Theta(season_length=12, frequency="M").fit(train_steps, train_values)
    model.predict(test_steps)    # one value per test row, forecast max(h) steps and read at each h

statsforecast needs a regular series: one row per step, no missing step. A key x window whose training
rows are not (a missing month, or several rows in one step, e.g. daily rows read with --frequency=M) is
skipped before any fit, with the ledger reason `irregular_series` and how many steps are missing
(`irregularity`); the same rule counts in `--plan_only`. Fill or aggregate such series upstream (in the
query) if a value is right for your data; the pipeline does not invent one.

`--season_length` (0: from the frequency, periods.SEASON_LENGTHS) is the seasonal cycle in steps.
statsforecast 2.x is compiled C++ (no Numba): nothing is compiled at run time, and the first fit in a
process pays only the imports (about 4 s); `warm_up` does that once per worker process, untimed.
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np

from pipeline.utils import periods

IRREGULAR = "irregular_series"
# The statsforecast parameters our interface sets itself (season_length) or has no use for.
_RESERVED = ("alias", "prediction_intervals", "season_length")


class StatisticalModel:
    """One statsforecast model fitted on a target history in step order; scikit-learn-like parameters
    (get_params) so artifacts and the ledger describe it like a regressor."""

    statsforecast_class: str = ""
    seasonal: bool = True  # takes a season length

    def __init__(self, season_length: int = 1, frequency: str = "D", **model_params):
        self.season_length, self.frequency, self.model_params = int(season_length), frequency, dict(model_params)
        self.fitted_, self.last_step_ = None, None

    @classmethod
    def library_class(cls):
        return getattr(importlib.import_module("statsforecast.models"), cls.statsforecast_class)

    @classmethod
    def known_params(cls) -> set[str]:
        """The hyperparameters --model_params may set (the statsforecast class's own)."""
        return set(inspect.signature(cls.library_class()).parameters) - set(_RESERVED)

    def get_params(self, deep: bool = True) -> dict:
        return {"season_length": self.season_length, "frequency": self.frequency, **self.model_params}

    def _library_model(self):
        settings = dict(self.model_params)
        if self.seasonal:
            settings["season_length"] = self.season_length
        return self.library_class()(**settings)

    def fit(self, steps, values) -> "StatisticalModel":
        """`steps`: each training row's step (consecutive integers, see `irregularity`); `values` the target."""
        steps = np.asarray(steps, dtype=np.int64).reshape(-1)
        problem = irregularity(steps)
        if problem:
            raise IrregularSeries(problem)
        self.fitted_ = self._library_model().fit(np.asarray(values, dtype=float).reshape(-1))
        self.last_step_ = int(steps[-1])
        return self

    def horizons(self, steps) -> np.ndarray:
        """Each row's h: its step minus the last training step (>= 1)."""
        horizon = np.asarray(steps, dtype=np.int64).reshape(-1) - self.last_step_
        if len(horizon) and horizon.min() < 1:
            raise ValueError(f"a row to predict is not after the last training step (h = {int(horizon.min())})")
        return horizon

    def predict(self, steps) -> np.ndarray:
        """The forecast at each row's step: max(h) steps ahead, read at every row's h."""
        horizon = self.horizons(steps)
        if not len(horizon):
            return np.array([], dtype=float)
        mean = np.asarray(self.fitted_.predict(h=int(horizon.max()))["mean"], dtype=float)
        return mean[horizon - 1]

    def steps_of(self, dates) -> np.ndarray:
        """The steps of `dates` in this model's frequency (to predict rows by date, e.g. from a saved model)."""
        return periods.steps(dates, self.frequency)


class IrregularSeries(ValueError):
    ledger_reason = IRREGULAR


class Naive(StatisticalModel):
    statsforecast_class, seasonal = "Naive", False


class SeasonalNaive(StatisticalModel):
    statsforecast_class = "SeasonalNaive"


class Theta(StatisticalModel):
    statsforecast_class = "Theta"


class DynamicTheta(StatisticalModel):
    statsforecast_class = "DynamicOptimizedTheta"


class ETS(StatisticalModel):
    statsforecast_class = "AutoETS"


class ARIMA(StatisticalModel):
    statsforecast_class = "AutoARIMA"


class CES(StatisticalModel):
    statsforecast_class = "AutoCES"


# Registry name -> class; pipeline.models.registry lists them after the regressors, and their descriptions
# (the --help text and the Console's choices) are in pipeline.params.declare.MODEL_DESCRIPTIONS.
MODELS = {"naive": Naive, "seasonal_naive": SeasonalNaive, "theta": Theta, "dynamic_theta": DynamicTheta,
          "ets": ETS, "arima": ARIMA, "ces": CES}


def irregularity(steps: np.ndarray) -> str:
    """Why a training history in these steps is not a regular series ("" when it is one)."""
    if len(steps) < 2:
        return ""
    gaps = np.diff(steps)
    if (gaps < 1).any():
        return f"{int((gaps < 1).sum())} row(s) share a step with the previous row (one row per step needed)"
    missing = int((gaps - 1).sum())
    if missing:
        first = int(steps[:-1][gaps > 1][0]) + 1
        return (f"{missing} missing step(s) in the training history (first at step {first}); statsforecast "
                "needs a regular series")
    return ""


def season_length(requested: int, frequency: str) -> int:
    """--season_length, or the frequency's usual cycle when it is 0."""
    return int(requested) if requested else periods.SEASON_LENGTHS[frequency]


def key_frequency(frequency: str, period_unit: str, dates) -> str:
    """The frequency a key's rows are read with (the pipeline's one rule)."""
    return periods.resolve_frequency(frequency, period_unit, dates)


def warm_up() -> None:
    """Imports statsforecast (about 4 s on 2 busy cores; its models are compiled C++, so later first calls
    cost no more than the next ones) and fits one model, so that no timed fit pays it."""
    Naive(frequency="M").fit(np.arange(24), np.arange(24.0)).predict(np.arange(24, 26))
