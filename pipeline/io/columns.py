"""The columns a run reads and their roles (key, period, date, target, features), checked before any work."""

from __future__ import annotations

import dataclasses

from pipeline.models import registry
from pipeline.params.catalog import PARAMS_BY_NAME
from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams

CHUNK_ROWS = 50_000  # rows per chunk, whatever the source
# Parameters that generate feature columns (pipeline.stages.prepare.features); any of them set, --features may be empty.
GENERATED_FEATURE_PARAMS = ("calendar_features", "lag_days", "rolling_mean_days", "lags", "rolling_means")


def with_period_column(params: PipelineParams) -> PipelineParams:
    """With --period, the derived period column is named by --time_column when it is not the default
    ('year'), else after the unit (year, quarter, month, week, day): --period=year on daily rows gives the
    outputs of an explicit year column, bit for bit."""
    if params.period and params.time_column == PARAMS_BY_NAME["time_column"].default:
        return dataclasses.replace(params, time_column=params.period)
    return params


def check_params(params: PipelineParams) -> None:
    """Each column has one role, and no column in two roles; no feature only when the models can fit without."""
    generated = [name for name in GENERATED_FEATURE_PARAMS if getattr(params, name, ())]
    needing = [name for name in params.model.split(",") if registry.needs_features(name)]
    if not params.features and not generated and needing:
        raise ParameterError("features", "", f"at least one feature column for {', '.join(needing)}, which fit "
                             "on features; or features generated from the date or the target history "
                             "(--calendar_features, --lag_days, --rolling_mean_days), or a model that needs "
                             "no feature")
    if params.period and params.time_column in params.calendar_features:
        raise ParameterError("time_column", params.time_column,
                             f"a name for the period column --period={params.period} derives (e.g. "
                             f"--time_column=period) that is not also the calendar feature {params.time_column!r}")
    roles = [params.key_column, params.time_column, params.date_column, params.target]
    for name, column in zip(("key_column", "time_column", "date_column", "target"), roles):
        if column in params.features:
            raise ParameterError("features", ",".join(params.features), f"must not contain the {name} {column!r}")
    if len(set(roles)) != len(roles):
        raise ParameterError("key_column", params.key_column,
                             "key, time, date and target columns must be four different columns")
    if len(set(params.features)) != len(params.features):
        raise ParameterError("features", ",".join(params.features), "each feature once")


def require_columns(params: PipelineParams, available: list[str]) -> None:
    """Fails naming the parameter when a column it names is not among `available`."""
    for name in ("key_column", "time_column", "date_column", "target"):
        column = getattr(params, name)
        if name == "time_column" and params.period:  # derived from the date: not read
            continue
        if column not in available:
            raise ParameterError(name, column, f"a column of the source; it has {', '.join(available)}")
    missing = [f for f in params.features if f not in available]
    if missing:
        raise ParameterError("features", ",".join(params.features),
                             f"columns of the source; missing {missing}, source has {', '.join(available)}")


def calendar_integer_error(unit: str, time_column: str) -> str:
    """Why integer periods that read as yyyymm (unit month) or yyyymmdd (day) are refused."""
    example = "202112 then 202201" if unit == "month" else "20210131 then 20210201"
    return (f"the period column {time_column!r} looks like {'yyyymm' if unit == 'month' else 'yyyymmdd'} "
            f"({example}: consecutive {unit}s that are not consecutive integers), so windows would slide over "
            f"{unit}s that do not exist; use --period={unit} to derive the periods from the date column, or "
            "--period_gaps_ok=true if the gaps are meant")
