"""Feature generation in the same pass: calendar features, and lags / rolling means of the target.

Calendar features (day_of_week, day_of_year, month, holiday) depend on the date only.

Target-history features are computed per key over all of the key's periods,
before windowing, so the first training rows of a window still see the periods
before it:

- `lag_<k>`: the key's target on the date k days earlier;
- `rolling_mean_<w>`: the mean of the key's target over the w days before the date
  (the row's own date excluded).

A row never uses its own or a later date. The rule for test rows is stricter: no
feature of a test row may use a target value at or after the window's test start.
So every row also carries *as-of variants* of these features, `<name>@<j>`,
computed with every target value from period `period - j` on treated as unknown.
`as_of(frame, cutoff)` gives each row at or after `cutoff` its variant
`j = period - cutoff`: test rows as of the test start, validation rows (search)
as of the validation start. Unknown values (masked, or no row on that date) become
0.0, the pipeline's rule for missing feature values.

`check_no_leakage` verifies the rule on every window: recomputing the features
with every target value at or after the window's test start masked must give the
window exactly the features it got. Enabled with --check_leakage (on in tests).
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
from pipeline.stages.windows import WindowPlan

CALENDAR_FEATURES = ("day_of_week", "day_of_year", "month", "holiday")
VARIANT_SEPARATOR = "@"


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
    lags: tuple[int, ...] = ()
    rolling_means: tuple[int, ...] = ()
    holiday_calendar: str = "fr"
    variants: int = 1  # as-of variants per row: cutoffs period, period - 1, ...

    @classmethod
    def from_params(cls, params: PipelineParams) -> "FeatureSpec":
        return cls(tuple(params.calendar_features), tuple(params.lag_days), tuple(params.rolling_mean_days),
                   params.holiday_calendar, max(params.test_periods, params.validation_periods))

    @property
    def target_names(self) -> list[str]:
        return [f"lag_{k}" for k in self.lags] + [f"rolling_mean_{w}" for w in self.rolling_means]

    @property
    def names(self) -> list[str]:
        return list(self.calendar) + self.target_names

    def variant_names(self, j: int) -> list[str]:
        return [f"{name}{VARIANT_SEPARATOR}{j}" for name in self.target_names]


def model_columns(params: PipelineParams) -> list[str]:
    """The columns a model is fitted on: the input's feature columns, then the generated ones."""
    return list(params.features) + FeatureSpec.from_params(params).names


def check_params(params: PipelineParams) -> None:
    """Static checks of the feature parameters (ParameterError before any work)."""
    unknown = sorted(set(params.calendar_features) - set(CALENDAR_FEATURES))
    if unknown:
        raise ParameterError("calendar_features", ",".join(params.calendar_features),
                             f"names among {', '.join(CALENDAR_FEATURES)} (unknown: {', '.join(unknown)})")
    for name in ("calendar_features", "lag_days", "rolling_mean_days"):
        values = getattr(params, name)
        if len(set(values)) != len(values):
            raise ParameterError(name, ",".join(map(str, values)), "each value once")
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

def lag_values(history: pd.Series, dates: pd.DatetimeIndex, days: int) -> np.ndarray:
    """The target `days` days before each date (NaN where unknown)."""
    return history.reindex(dates - pd.Timedelta(days=days)).to_numpy(dtype=float)


def rolling_mean_values(history: pd.Series, dates: pd.DatetimeIndex, days: int) -> np.ndarray:
    """Mean of the known target values in [date - days, date - 1 day] (NaN where none)."""
    first = dates.min() - pd.Timedelta(days=days + 1)  # history's dates are among `dates`
    daily = history.reindex(pd.date_range(first, dates.max(), freq="D"))
    sums = np.concatenate([[0.0], np.cumsum(np.nan_to_num(daily.to_numpy(dtype=float)))])
    counts = np.concatenate([[0], np.cumsum(daily.notna().to_numpy())])
    end = (dates - first).days.to_numpy()  # index of date - 1 day, plus one (prefix sums)
    begin = end - days
    n = counts[end] - counts[begin]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[end] - sums[begin]) / np.maximum(n, 1), np.nan)


TARGET_FEATURES = {"lag": lag_values, "rolling_mean": rolling_mean_values}


def target_history(frame: pd.DataFrame, spec: FeatureSpec, params: PipelineParams,
                   cutoff: int | None = None) -> pd.DataFrame:
    """Lags and rolling means for every row of one key's frame; target values in periods >= cutoff
    are treated as unknown. Missing results become 0.0."""
    known = frame[params.target].where(frame[params.time_column] < cutoff) if cutoff is not None \
        else frame[params.target]
    dates = pd.DatetimeIndex(pd.to_datetime(frame[params.date_column]))
    history = pd.Series(known.to_numpy(dtype=float), index=dates).dropna()
    columns = {}
    for kind, values in (("lag", spec.lags), ("rolling_mean", spec.rolling_means)):
        for days in values:
            columns[f"{kind}_{days}"] = TARGET_FEATURES[kind](history, dates, days)
    return pd.DataFrame(columns, index=frame.index).fillna(0.0)


def add_target_features(frame: pd.DataFrame, spec: FeatureSpec, params: PipelineParams) -> pd.DataFrame:
    """One key's rows (all periods) -> with target-history features and their as-of variants."""
    frame = frame.sort_values(params.date_column, kind="mergesort", ignore_index=True)
    periods = frame[params.time_column]
    parts = [frame, target_history(frame, spec, params)]
    for j in range(spec.variants):
        variant = pd.DataFrame(index=frame.index, columns=spec.variant_names(j), dtype=float)
        for cutoff in sorted(set(periods - j)):
            rows = (periods == cutoff + j).to_numpy()
            variant.loc[rows] = target_history(frame, spec, params, cutoff).loc[rows].to_numpy()
        parts.append(variant)
    return pd.concat(parts, axis=1)


def as_of(frame: pd.DataFrame, cutoff: int, params: PipelineParams) -> pd.DataFrame:
    """Rows at or after `cutoff` get the features computed without target values from `cutoff` on;
    variant columns are dropped."""
    spec = FeatureSpec.from_params(params)
    if not spec.target_names:
        return frame
    out = frame.drop(columns=[c for c in frame.columns if VARIANT_SEPARATOR in str(c)])
    offset = (frame[params.time_column] - cutoff).to_numpy()
    if (offset >= spec.variants).any():
        raise ValueError(f"rows {offset.max()} periods after cutoff {cutoff}; only {spec.variants} variants")
    for j in range(spec.variants):
        rows = offset == j
        if rows.any():
            out.loc[rows, spec.target_names] = frame.loc[rows, spec.variant_names(j)].to_numpy()
    return out


def check_no_leakage(key: str, frame: pd.DataFrame, spec: FeatureSpec, params: PipelineParams,
                     plan: WindowPlan) -> int:
    """Raises LeakageError unless, for every window of this key, the features the window gets equal
    those recomputed with every target value at or after its test start masked. Returns the number
    of windows checked. `frame` is the key's output of `add_target_features`."""
    periods = frame[params.time_column]
    starts = range(int(periods.min()) - plan.size + 1, int(periods.max()) + 1)
    cutoffs = sorted({plan.test_start(s) for s in starts if s % plan.period == 0})
    raw = frame.drop(columns=[c for c in frame.columns if VARIANT_SEPARATOR in str(c)] + spec.target_names)
    for cutoff in cutoffs:
        rows = (periods < cutoff + plan.test_periods).to_numpy()
        if not rows.any():
            continue
        masked = raw.assign(**{params.target: raw[params.target].where(periods < cutoff)})
        expected = as_of(add_target_features(masked, spec, params).loc[rows], cutoff, params)[spec.target_names]
        got = as_of(frame.loc[rows], cutoff, params)[spec.target_names]
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
        rows = add_target_features(rows, self._spec, self._params)
        if self._params.check_leakage:
            self._checked.inc(check_no_leakage(key, rows, self._spec, self._params, self._plan))
        yield key, rows


class GenerateFeatures(beam.PTransform):
    """(key, the key's rows) -> the same with generated feature columns.

    Each element already holds the key's whole history (pipeline.stages.rows), so the
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
        if spec.target_names:
            key_rows = key_rows | "TargetHistoryFeatures" >> beam.ParDo(_TargetFeaturesFn(self._params))
        return key_rows
