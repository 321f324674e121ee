"""The columns a run reads and their roles (key, period, date, target, features), checked before any work."""

from __future__ import annotations

from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams

CHUNK_ROWS = 50_000  # rows per chunk, whatever the source


def check_params(params: PipelineParams) -> None:
    """Each column has one role: at least one feature, and no column in two roles."""
    if not params.features:
        raise ParameterError("features", "", "at least one feature column")
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
        if column not in available:
            raise ParameterError(name, column, f"a column of the source; it has {', '.join(available)}")
    missing = [f for f in params.features if f not in available]
    if missing:
        raise ParameterError("features", ",".join(params.features),
                             f"columns of the source; missing {missing}, source has {', '.join(available)}")
