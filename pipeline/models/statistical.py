"""Statistical models from Nixtla's statsforecast, behind one small interface (`--model=theta,ets,...`).

They fit on the key's target history alone, in date order, and forecast h steps ahead, where a step is
one period of the key's frequency (`pipeline.utils.periods.resolve_frequency`) and a test or forecast
row's h is its step minus the last training row's step (`periods.steps`: 12 months after 2021-03-01 is
2022-03-01, 12 steps, whatever the number of days). The feature columns are not used, except by
`arimax` (below).

    model = Theta(season_length=12, frequency="M").fit(train_steps, train_values)
    model.predict(test_steps)    # one value per test row, forecast max(h) steps and read at each h
    model.bands(test_steps, (80, 95))   # statsforecast's own prediction intervals (--interval_method=model)

`arimax` is AutoARIMA with exogenous regressors: the model's feature columns (--features and the calendar
features) as X, their values in the test or forecast rows as the future X (realised values in a backtest,
as statsforecast's own cross-validation does: optimistic when production forecasts them). Its inputs are
a matrix, the steps first then the regressors (`inputs`). Features generated from the target history
(--lags, --rolling_means, --lag_days, --rolling_mean_days) are not among its regressors: their future
values are unknown beyond one step, and ARIMA's autoregressive terms already model the target's own
history; a run with no other feature is refused before any work. The regressors are needed at every step
up to the largest h: a row to predict h steps ahead with a step before it missing fails (fit_error).

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
    exogenous: bool = False  # takes the feature columns as regressors (inputs: steps, then regressors)

    def __init__(self, season_length: int = 1, frequency: str = "D", **model_params):
        self.season_length, self.frequency, self.model_params = int(season_length), frequency, dict(model_params)
        self.fitted_, self.last_step_ = None, None
        self.regressors: tuple[str, ...] = ()  # the regressors' column names (exogenous models), set by the fit

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

    def fit(self, inputs, values) -> "StatisticalModel":
        """`inputs`: each training row's step (consecutive integers, see `irregularity`), or for an exogenous
        model a matrix of the steps then the regressors (`inputs`); `values` the target."""
        steps, regressors = split_inputs(inputs)
        problem = irregularity(steps)
        if problem:
            raise IrregularSeries(problem)
        target = np.asarray(values, dtype=float).reshape(-1)
        self.fitted_ = (self._library_model().fit(target, X=regressors) if self.exogenous
                        else self._library_model().fit(target))
        self.last_step_ = int(steps[-1])
        return self

    def horizons(self, steps) -> np.ndarray:
        """Each row's h: its step minus the last training step (>= 1)."""
        horizon = np.asarray(steps, dtype=np.int64).reshape(-1) - self.last_step_
        if len(horizon) and horizon.min() < 1:
            raise ValueError(f"a row to predict is not after the last training step (h = {int(horizon.min())})")
        return horizon

    def _forecast(self, inputs, levels=()) -> tuple[dict, np.ndarray]:
        """(statsforecast's forecast max(h) steps ahead, each row's h); empty when there is no row."""
        steps, regressors = split_inputs(inputs)
        horizon = self.horizons(steps)
        if not len(horizon):
            return {}, horizon
        settings = {"level": list(levels)} if levels else {}
        if self.exogenous:
            settings["X"] = future_regressors(horizon, regressors)
        return self.fitted_.predict(h=int(horizon.max()), **settings), horizon

    def predict(self, inputs) -> np.ndarray:
        """The forecast at each row's step: max(h) steps ahead, read at every row's h."""
        forecast, horizon = self._forecast(inputs)
        if not len(horizon):
            return np.array([], dtype=float)
        return np.asarray(forecast["mean"], dtype=float)[horizon - 1]

    def bands(self, inputs, levels) -> dict[str, np.ndarray]:
        """statsforecast's own prediction intervals at each row: {lower_L, upper_L} per level L (the
        model's assumed error distribution, mean +/- z * sigma_h; pipeline.stages.fit.intervals)."""
        forecast, horizon = self._forecast(inputs, levels)
        out = {}
        for level in levels:
            for side, name in (("lower", "lo"), ("upper", "hi")):
                values = np.asarray(forecast[f"{name}-{level}"], dtype=float) if len(horizon) else np.array([])
                out[f"{side}_{level}"] = values[horizon - 1] if len(horizon) else values
        return out

    def inputs_of(self, frame, date_column: str) -> np.ndarray:
        """The inputs of rows to predict (a saved model re-predicting them): their steps in this model's
        frequency, and the regressors' columns for an exogenous model."""
        steps = self.steps_of(frame[date_column].to_numpy())
        if not self.regressors:
            return steps
        return inputs(steps, np.column_stack([frame[name].to_numpy(dtype=float) for name in self.regressors]))

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


class ARIMAX(StatisticalModel):
    statsforecast_class, exogenous = "AutoARIMA", True


# Registry name -> class; pipeline.models.registry lists them after the regressors, and their descriptions
# (the --help text and the Console's choices) are in pipeline.params.declare.MODEL_DESCRIPTIONS.
MODELS = {"naive": Naive, "seasonal_naive": SeasonalNaive, "theta": Theta, "dynamic_theta": DynamicTheta,
          "ets": ETS, "arima": ARIMA, "arimax": ARIMAX, "ces": CES}


def inputs(steps, regressors=None) -> np.ndarray:
    """A statistical model's inputs: the steps alone, or a matrix of the steps then the regressors."""
    steps = np.asarray(steps, dtype=np.int64).reshape(-1)
    if regressors is None:
        return steps
    return np.column_stack([steps.astype(float), np.asarray(regressors, dtype=float).reshape(len(steps), -1)])


def split_inputs(values) -> tuple[np.ndarray, np.ndarray | None]:
    """(steps, regressors or None) of a model's inputs (`inputs`)."""
    values = np.asarray(values)
    if values.ndim < 2:
        return values.astype(np.int64).reshape(-1), None
    return values[:, 0].astype(np.int64), np.asarray(values[:, 1:], dtype=float)


def future_regressors(horizon: np.ndarray, regressors: np.ndarray | None) -> np.ndarray:
    """The regressors of steps 1..max(h) from the rows to predict (one row per h, none missing)."""
    if regressors is None or not regressors.shape[1]:
        raise ValueError("an exogenous model needs the regressors of the rows to predict")
    if len(np.unique(horizon)) != len(horizon) or len(horizon) != int(horizon.max()):
        missing = sorted(set(range(1, int(horizon.max()) + 1)) - set(horizon.tolist()))
        raise ValueError(f"the regressors are needed at every step up to h = {int(horizon.max())}: "
                         + (f"no row at h = {missing[:5]}" if missing else "several rows share a step"))
    future = np.empty((len(horizon), regressors.shape[1]))
    future[horizon - 1] = regressors
    return future


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
