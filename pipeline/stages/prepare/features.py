"""Feature generation in the same pass: calendar features, and lags / rolling means of the target.

Calendar features (day_of_week, day_of_year, month, holiday) depend on the date only.

Target-history features (pipeline.stages.prepare.target_history) are computed per key over all of the key's
periods, before windowing, so the first training rows of a window still see the periods before it:

- `lag_<k>` (--lags): the key's target k steps of its frequency earlier (calendar-aware: 12 months
  before 2021-03-01 is 2020-03-01); with --lag_days, k days earlier;
- `rolling_mean_<w>` (--rolling_means, --rolling_mean_days): the mean of the key's known targets over
  the w steps (days) before the row, the row's own excluded.

The key's frequency is `periods.resolve_frequency` (--frequency, else inferred from the key's dates);
the run counts the keys per frequency in summary.json. A value that is not known (no row there, or
before the key's first row) is NaN: models that accept missing values get it as is, the others get
the training mean of the column (pipeline.stages.fit.split.WindowSplit), counted in the summary as
`feature_values_imputed`.

A row never uses its own or a later date. Test rows (and the search's validation rows, and rows to
forecast) are predicted recursively: no actual at or after the cutoff, predictions in its place
(target_history.Recursion). `check_no_leakage` verifies the rule on every window: recomputing the
features with every target value at or after the window's test start masked must give the window
exactly the known values it got. Enabled with --check_leakage (on in tests).
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam
import numpy as np
import pandas as pd
from pandas.tseries.holiday import (AbstractHolidayCalendar, EasterMonday, Holiday,
                                    USFederalHolidayCalendar)
from pandas.tseries.offsets import Day, Easter

from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.stages.prepare import target_history
from pipeline.stages.prepare.target_history import TargetFeature
from pipeline.stages.prepare.windows import WindowPlan
from pipeline.utils import periods

CALENDAR_FEATURES = ("day_of_week", "day_of_year", "month", "holiday")
FREQUENCIES = "frequencies"  # the tagged output of GenerateFeatures: keys counted per frequency


class FrenchHolidayCalendar(AbstractHolidayCalendar):
    """France's public holidays (metropolitan), from fixed dates and Easter."""

    rules = [
        Holiday("Jour de l'an", month=1, day=1),
        EasterMonday,
        Holiday("Fete du travail", month=5, day=1),
        Holiday("Victoire 1945", month=5, day=8),
        Holiday("Ascension", month=1, day=1, offset=[Easter(), Day(39)]),
        Holiday("Lundi de Pentecote", month=1, day=1, offset=[Easter(), Day(50)]),
        Holiday("Fete nationale", month=7, day=14),
        Holiday("Assomption", month=8, day=15),
        Holiday("Toussaint", month=11, day=1),
        Holiday("Armistice", month=11, day=11),
        Holiday("Noel", month=12, day=25),
    ]


HOLIDAY_CALENDARS = {"fr": FrenchHolidayCalendar, "us": USFederalHolidayCalendar}


class LeakageError(AssertionError):
    """A generated feature uses a target value it must not see."""


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    calendar: tuple[str, ...] = ()
    lags: tuple[int, ...] = ()  # in steps of the key's frequency
    rolling_means: tuple[int, ...] = ()
    lag_days: tuple[int, ...] = ()
    rolling_mean_days: tuple[int, ...] = ()
    holiday_calendar: str = "fr"

    @classmethod
    def from_params(cls, params: PipelineParams) -> "FeatureSpec":
        return cls(tuple(params.calendar_features), tuple(params.lags), tuple(params.rolling_means),
                   tuple(params.lag_days), tuple(params.rolling_mean_days), params.holiday_calendar)

    @property
    def target_features(self) -> list[TargetFeature]:
        step, day = target_history.STEP_COLUMN, target_history.DAY_COLUMN
        return ([TargetFeature("lag", k, step) for k in self.lags]
                + [TargetFeature("lag", k, day) for k in self.lag_days]
                + [TargetFeature("rolling_mean", w, step) for w in self.rolling_means]
                + [TargetFeature("rolling_mean", w, day) for w in self.rolling_mean_days])

    @property
    def target_names(self) -> list[str]:
        return [feature.name for feature in self.target_features]

    @property
    def uses_steps(self) -> bool:
        return bool(self.lags or self.rolling_means)

    @property
    def names(self) -> list[str]:
        return list(self.calendar) + self.target_names


def model_columns(params: PipelineParams) -> list[str]:
    """The columns a model is fitted on: the input's feature columns, then the generated ones."""
    return list(params.features) + FeatureSpec.from_params(params).names


def history_columns(params: PipelineParams) -> list[str]:
    """The hidden columns the recursive horizon needs next to the model columns (positions, counts)."""
    spec = FeatureSpec.from_params(params)
    positions = sorted({feature.position_column for feature in spec.target_features})
    return positions + [feature.count_column for feature in spec.target_features]


def check_params(params: PipelineParams) -> None:
    """Static checks of the feature parameters (ParameterError before any work)."""
    unknown = sorted(set(params.calendar_features) - set(CALENDAR_FEATURES))
    if unknown:
        raise ParameterError("calendar_features", ",".join(params.calendar_features),
                             f"names among {', '.join(CALENDAR_FEATURES)} (unknown: {', '.join(unknown)})")
    for name in ("calendar_features", "lags", "rolling_means", "lag_days", "rolling_mean_days"):
        values = getattr(params, name)
        if len(set(values)) != len(values):
            raise ParameterError(name, ",".join(map(str, values)), "each value once")
    for steps, days in (("lags", "lag_days"), ("rolling_means", "rolling_mean_days")):
        both = sorted(set(getattr(params, steps)) & set(getattr(params, days)))
        if both:
            raise ParameterError(days, ",".join(map(str, getattr(params, days))),
                                 f"values not also in --{steps} (both would be named {steps[:-1]}_{both[0]})")
    clashes = sorted(set(FeatureSpec.from_params(params).names) & set(params.columns))
    if clashes:
        raise ParameterError("features", ",".join(params.features),
                             f"input columns must not be named like generated features: {', '.join(clashes)}")


# -- calendar ------------------------------------------------------------------

def calendar_features(dates: pd.Series, spec: FeatureSpec) -> pd.DataFrame:
    dates = pd.to_datetime(dates)
    columns = {}
    if "day_of_week" in spec.calendar:
        columns["day_of_week"] = dates.dt.day_of_week.astype(float)
    if "day_of_year" in spec.calendar:
        columns["day_of_year"] = dates.dt.day_of_year.astype(float)
    if "month" in spec.calendar:
        columns["month"] = dates.dt.month.astype(float)
    if "holiday" in spec.calendar:
        holidays = HOLIDAY_CALENDARS[spec.holiday_calendar]().holidays(dates.min(), dates.max())
        columns["holiday"] = dates.dt.normalize().isin(holidays).astype(float)
    return pd.DataFrame(columns, index=dates.index)[list(spec.calendar)]


def add_calendar_features(block: pd.DataFrame, spec: FeatureSpec, date_column: str) -> pd.DataFrame:
    return pd.concat([block, calendar_features(block[date_column], spec)], axis=1)


# -- target history --------------------------------------------------------------

TARGET_FEATURES = {"compute": target_history.compute}  # a test replaces it with a leaky one


def key_frequency(frame: pd.DataFrame, params: PipelineParams) -> str:
    """The frequency of one key's rows: the one rule of every stage (periods.resolve_frequency)."""
    return periods.resolve_frequency(params.frequency, params.period, _dates(frame, params))


def _dates(frame: pd.DataFrame, params: PipelineParams) -> np.ndarray:
    return pd.to_datetime(frame[params.date_column]).to_numpy()


def add_target_features(frame: pd.DataFrame, spec: FeatureSpec, params: PipelineParams) -> pd.DataFrame:
    """One key's rows (all periods) -> in date order, with the target-history features (NaN where
    unknown), their counts and the rows' positions (pipeline.stages.prepare.target_history)."""
    frame = frame.sort_values(params.date_column, kind="mergesort", ignore_index=True)
    dates = _dates(frame, params)
    columns = {}
    if spec.uses_steps:
        columns[target_history.STEP_COLUMN] = periods.steps(dates, key_frequency(frame, params))
    if spec.lag_days or spec.rolling_mean_days:
        columns[target_history.DAY_COLUMN] = periods.ordinals(dates, "day")
    values = frame[params.target].to_numpy(dtype=float)
    for feature in spec.target_features:
        columns[feature.name], columns[feature.count_column] = TARGET_FEATURES["compute"](
            columns[feature.position_column], values, feature)
    return pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)


def known_at(frame: pd.DataFrame, cutoff: int, params: PipelineParams) -> pd.DataFrame:
    """The target-history features of `frame`'s rows as known at `cutoff`: rows from `cutoff` on get the
    values computed without any target from `cutoff` on (NaN where nothing is known); no prediction."""
    spec = FeatureSpec.from_params(params)
    is_test = (frame[params.time_column] >= cutoff).to_numpy()
    if not spec.target_names or not is_test.any():
        return frame
    test = frame.loc[is_test]
    recursion = target_history.Recursion.of(spec.target_features, lambda name: test[name].to_numpy(),
                                            test[params.target].to_numpy(dtype=float))
    out = frame.copy()
    out.loc[is_test, spec.target_names] = recursion.values(np.arange(len(test)), None)
    return out


def check_no_leakage(key: str, frame: pd.DataFrame, spec: FeatureSpec, params: PipelineParams,
                     plan: WindowPlan) -> int:
    """Raises LeakageError unless, for every window of this key, the features the window's rows know
    at its test start equal those recomputed with every target value at or after its test start
    masked. Returns the number of windows checked. `frame` is the key's output of `add_target_features`."""
    periods_of_rows = frame[params.time_column]
    starts = range(int(periods_of_rows.min()) - plan.size + 1, int(periods_of_rows.max()) + 1)
    cutoffs = sorted({plan.test_start(s) for s in starts if s % plan.period == 0})
    raw = frame.drop(columns=spec.target_names + history_columns(params))
    for cutoff in cutoffs:
        rows = (periods_of_rows < cutoff + plan.test_periods).to_numpy()
        if not rows.any():
            continue
        masked = raw.assign(**{params.target: raw[params.target].where(periods_of_rows < cutoff)})
        expected = add_target_features(masked, spec, params).loc[rows, spec.target_names]
        got = known_at(frame.loc[rows], cutoff, params)[spec.target_names]
        differs = ~np.isclose(got.to_numpy(dtype=float), expected.to_numpy(dtype=float), equal_nan=True)
        if differs.any():
            column = spec.target_names[int(np.argmax(differs.any(axis=0)))]
            raise LeakageError(
                f"feature {column} of key {key!r} uses target values at or after the test start {cutoff}: "
                f"{int(differs.any(axis=1).sum())} row(s) of the window(s) with that test start change when "
                "those values are masked")
    return len(cutoffs)


# -- the pipeline stage -----------------------------------------------------------

def is_enabled(params: PipelineParams) -> bool:
    return bool(FeatureSpec.from_params(params).names)


class _TargetFeaturesFn(beam.DoFn):
    def __init__(self, params: PipelineParams):
        self._params = params
        self._spec = FeatureSpec.from_params(params)
        self._plan = WindowPlan.from_params(params)
        self._checked = beam.metrics.Metrics.counter("features", "leakage_windows_checked")

    def process(self, element):
        key, rows = element
        if self._spec.uses_steps:
            yield beam.pvalue.TaggedOutput(FREQUENCIES, {"keys_by_frequency": {key_frequency(rows, self._params): 1}})
        rows = add_target_features(rows, self._spec, self._params)
        if self._params.check_leakage:
            self._checked.inc(check_no_leakage(key, rows, self._spec, self._params, self._plan))
        yield key, rows


class GenerateFeatures(beam.PTransform):
    """(key, the key's rows) -> {"rows": the same with generated feature columns, FREQUENCIES: with
    --lags or --rolling_means, one counter dict per key, its frequency (for summary.json)}.

    Each element already holds the key's whole history (pipeline.stages.prepare.rows), so the
    target-history features need no further shuffle.
    """

    def __init__(self, params: PipelineParams):
        super().__init__()
        self._params = params
        self._spec = FeatureSpec.from_params(params)

    def expand(self, key_rows):
        spec, date_column = self._spec, self._params.date_column
        if spec.calendar:
            key_rows = key_rows | "CalendarFeatures" >> beam.MapTuple(
                lambda key, rows: (key, add_calendar_features(rows, spec, date_column)))
        if not spec.target_names:
            return {"rows": key_rows}
        generated = key_rows | "TargetHistoryFeatures" >> beam.ParDo(_TargetFeaturesFn(self._params)).with_outputs(
            FREQUENCIES, main="rows")
        return {"rows": generated["rows"], **({FREQUENCIES: generated[FREQUENCIES]} if spec.uses_steps else {})}
