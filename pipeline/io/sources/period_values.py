"""The launcher's look at the integer periods of the source: values that read as yyyymm or yyyymmdd
(utils.periods.calendar_integer_unit) are refused before any work, naming --period=month (or day).
Only where the look is cheap (the local DuckDB query, the period column of Parquet files); elsewhere
(BigQuery, CSV, JSON) the pipeline's period range refuses them before its fits (stages.windows)."""

from __future__ import annotations

from apache_beam.io.filesystems import FileSystems

from pipeline.io.columns import calendar_integer_error
from pipeline.io.sources.files import MAX_FOOTERS_READ, input_paths
from pipeline.io.sources.local_query import duckdb_connection
from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.utils import periods

LAUNCH_PERIODS_LIMIT = 100_000  # distinct periods the launcher looks at (the pipeline checks them again)


def check(params: PipelineParams, kind: str) -> None:
    """Fails before any work when the integer period column reads as yyyymm(dd) and the gaps are not meant."""
    if params.period or params.period_gaps_ok:
        return
    unit = periods.calendar_integer_unit(launch_periods(params, kind))
    if unit:
        raise ParameterError("time_column", params.time_column, calendar_integer_error(unit, params.time_column))


def launch_periods(params: PipelineParams, kind: str) -> list[int]:
    """Distinct integer periods of the source when the launcher can read them cheaply; empty otherwise."""
    column = params.time_column
    try:
        if kind == "duckdb":
            connection = duckdb_connection(params.input or None)
            try:
                rows = connection.execute(f'SELECT DISTINCT TRY_CAST("{column}" AS BIGINT) FROM ({params.query}) '
                                          f"LIMIT {LAUNCH_PERIODS_LIMIT}").fetchall()
            finally:
                connection.close()
            return [row[0] for row in rows if row[0] is not None]
        paths = input_paths(params.input) if kind == "file" else []
        if not paths or len(paths) > MAX_FOOTERS_READ or not all(p.endswith(".parquet") for p in paths):
            return []
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        seen = set()
        for path in paths:
            with FileSystems.open(path) as handle:
                values = pc.unique(pq.ParquetFile(handle).read(columns=[column]).column(column))
            seen.update(int(v) for v in values.to_pylist() if isinstance(v, (int, float)) and float(v).is_integer())
            if len(seen) >= LAUNCH_PERIODS_LIMIT:
                break
        return sorted(seen)
    except Exception:  # a look only: validation reports what is wrong with the values
        return []
