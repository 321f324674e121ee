"""BigQuery in and out with Beam's native IO, as in the article.

- Source: `--query` (standard SQL) or `--input_table`, read with
  `beam.io.ReadFromBigQuery` (Storage Read API by default, or an export job),
  batched into the same DataFrame chunks as the other sources.
- Sinks: predictions, metrics, ledger and rejected rows, each to its table when
  named, with `beam.io.WriteToBigQuery`. Table schemas are derived from
  `sinks.output_schemas` (the one place output schemas are declared); the
  predictions table is partitioned by date and clustered by key.
- Before any work (`prepare`): the source's column names and BigQuery types, the
  existing target tables' schemas, and the run-id rule: with WRITE_APPEND a run
  id that already has rows in a target table is refused or its rows deleted.
"""

from __future__ import annotations

import datetime

import apache_beam as beam
import pandas as pd
import pyarrow as pa
from apache_beam.io.gcp.bigquery import BigQueryDisposition, ReadFromBigQuery, WriteToBigQuery
from apache_beam.io.gcp.bigquery_tools import RetryStrategy
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from pipeline import sinks
from pipeline.options import ParameterError, PipelineParams
from pipeline.source import CHUNK_ROWS, require_columns

# Which --*_table parameter names the table of each output.
OUTPUT_TABLE_PARAMS = {"predictions": "output_table", "metrics": "metrics_table",
                       "ledger": "ledger_table", "rejected_rows": "rejected_table"}
RUN_ID_COLUMN = "run_id"
CLIENT_TIMEOUT_SECONDS = 60.0  # per call and per job wait: a launcher must not hang on a stuck call

_INTEGER = {"INTEGER", "INT64"}
_NUMBER = _INTEGER | {"FLOAT", "FLOAT64", "NUMERIC", "DECIMAL", "BIGNUMERIC", "BIGDECIMAL"}
# BigQuery types each column role can use; STRING is parsed (unparsable values become rejected rows).
ROLE_TYPES = {
    "key_column": _INTEGER | {"STRING"},
    "time_column": _NUMBER | {"STRING"},
    "date_column": {"DATE", "DATETIME", "TIMESTAMP", "STRING"},
    "target": _NUMBER | {"STRING"},
    "features": _NUMBER | {"STRING"},
}
_SAME_TYPE = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}


# -- table specs and schemas ---------------------------------------------------

def parse_table(spec: str, default_project: str | None = None) -> tuple[str | None, str, str]:
    """(project, dataset, table) from project:dataset.table, project.dataset.table or dataset.table."""
    project, _, rest = spec.rpartition(":")
    parts = rest.split(".")
    if len(parts) == 3 and not project:
        project, parts = parts[0], parts[1:]
    return project or default_project, parts[0], parts[1]


def sql_table(spec: str, default_project: str | None) -> str:
    """The table as a quoted standard-SQL identifier."""
    project, dataset, table = parse_table(spec, default_project)
    return f"`{project}.{dataset}.{table}`" if project else f"`{dataset}.{table}`"


def bigquery_type(arrow_type: pa.DataType) -> str:
    """The BigQuery column type that holds an output column of this Arrow type."""
    for is_type, name in ((pa.types.is_string, "STRING"), (pa.types.is_integer, "INTEGER"),
                          (pa.types.is_floating, "FLOAT"), (pa.types.is_date, "DATE"),
                          (pa.types.is_timestamp, "TIMESTAMP"), (pa.types.is_boolean, "BOOLEAN")):
        if is_type(arrow_type):
            return name
    raise TypeError(f"no BigQuery type for the Arrow type {arrow_type}")


def table_schema(schema: pa.Schema) -> dict:
    """A WriteToBigQuery schema from an output's Arrow schema."""
    return {"fields": [{"name": field.name, "type": bigquery_type(field.type), "mode": "NULLABLE"}
                       for field in schema]}


def output_tables(params: PipelineParams) -> dict[str, str]:
    """{output name: table spec} for every output the parameters send to BigQuery."""
    return {name: getattr(params, param) for name, param in OUTPUT_TABLE_PARAMS.items()
            if getattr(params, param)}


def table_layout(params: PipelineParams, name: str) -> dict:
    """Partitioning and clustering: RMSE per key and year scans only what it needs."""
    if name != "predictions":
        return {}
    return {"timePartitioning": {"type": "DAY", "field": params.date_column},
            "clustering": {"fields": [params.key_column, RUN_ID_COLUMN]}}


# -- source ------------------------------------------------------------------

def read_transform(params: PipelineParams) -> ReadFromBigQuery:
    """Beam's BigQuery read for --input_table or --query."""
    direct = params.bq_read_method == ReadFromBigQuery.Method.DIRECT_READ
    kwargs = {"method": params.bq_read_method}
    if not direct and params.bq_temp_location:
        kwargs["gcs_location"] = params.bq_temp_location
    if params.input_table:
        kwargs["table"] = params.input_table
        if direct:  # the Storage Read API sends only these columns
            kwargs["selected_fields"] = list(params.columns)
    else:
        kwargs.update(query=params.query, use_standard_sql=True)
    return ReadFromBigQuery(**kwargs)


def rows_to_frame(rows: list[dict], columns: tuple[str, ...]) -> pd.DataFrame:
    """A chunk from BigQuery rows. Values stay as read (int, float, Decimal, str, date,
    datetime): validation parses them with pd.to_numeric / pd.to_datetime and keeps
    the original in rejected rows."""
    return pd.DataFrame.from_records(rows, columns=list(columns))


class ReadBigQueryChunks(beam.PTransform):
    """Rows of --query or --input_table from BigQuery -> DataFrame chunks of the needed columns."""

    def __init__(self, params: PipelineParams):
        super().__init__()
        self._params = params

    def expand(self, pbegin):
        return (pbegin
                | "ReadFromBigQuery" >> read_transform(self._params)
                | "Batch" >> beam.BatchElements(min_batch_size=1000, max_batch_size=CHUNK_ROWS)
                | "ToFrames" >> beam.Map(rows_to_frame, self._params.columns))


# -- sinks -------------------------------------------------------------------

def _json_value(value):
    return value.isoformat() if isinstance(value, (datetime.date, datetime.datetime)) else value


def bigquery_rows(frame: pd.DataFrame, schema: pa.Schema) -> list[dict]:
    """Row dicts in the output's schema, through the same conversion as the file outputs
    (NaN -> NULL, dates as dates), then JSON-ready for load files and insertAll."""
    return [{name: _json_value(value) for name, value in row.items()}
            for row in sinks.to_table(frame, schema).to_pylist()]


def _fail_on_rejected_insert(failed: tuple):
    destination, row, errors = failed
    raise RuntimeError(f"BigQuery refused a row for {destination}: {errors} row={row}")


class WriteTable(beam.PTransform):
    """One output (DataFrames or row dicts) -> one BigQuery table with the output's schema."""

    def __init__(self, params: PipelineParams, table: str, schema: pa.Schema, layout: dict):
        super().__init__()
        self._params, self._table, self._schema, self._layout = params, table, schema, layout

    def expand(self, elements):
        params, schema = self._params, self._schema
        streaming = params.bq_write_method == WriteToBigQuery.Method.STREAMING_INSERTS
        temp = params.bq_temp_location
        result = (elements
                  | "Batch" >> beam.BatchElements(min_batch_size=64, max_batch_size=2048)
                  | "Concat" >> beam.Map(sinks._concat)
                  | "ToRows" >> beam.FlatMap(bigquery_rows, schema)
                  | "Write" >> WriteToBigQuery(
                      self._table,
                      schema=table_schema(schema),
                      create_disposition=BigQueryDisposition.CREATE_IF_NEEDED,
                      write_disposition=params.write_disposition,
                      method=params.bq_write_method,
                      additional_bq_parameters=self._layout,
                      custom_gcs_temp_location=temp,
                      # Beam insists on a gs:// temp location when validating; local runs pass a local one.
                      validate=temp is None or temp.startswith("gs://"),
                      insert_retry_strategy=RetryStrategy.RETRY_ON_TRANSIENT_ERROR))
        if streaming:  # a row BigQuery refuses fails the job, with BigQuery's reason, instead of vanishing
            result.failed_rows_with_errors | "FailOnRefusedInserts" >> beam.Map(
                _fail_on_rejected_insert)
        return result


class WriteBigQueryOutputs(beam.PTransform):
    """Writes each output that has a --*_table parameter to that BigQuery table, with the run's
    lineage columns on every row, as in the file outputs."""

    def __init__(self, params: PipelineParams, run_lineage=None):
        super().__init__()
        self._params, self._lineage = params, run_lineage

    def expand(self, outputs: dict):
        from pipeline import lineage

        schemas = sinks.output_schemas(self._params)
        columns = (self._lineage or lineage.RunLineage.collect(self._params)).columns()
        return {name: (outputs[name]
                       | f"Lineage_{name}" >> beam.Map(lineage.stamp, columns)
                       | f"ToBigQuery_{name}" >> WriteTable(self._params, table, schemas[name],
                                                            table_layout(self._params, name)))
                for name, table in output_tables(self._params).items()}


# -- checks before any work ----------------------------------------------------

def make_client(project: str | None):
    """The official BigQuery client (it honours BIGQUERY_EMULATOR_HOST, used by the tests)."""
    from google.cloud import bigquery

    return bigquery.Client(project=project)


def _retry():
    from google.cloud.bigquery import DEFAULT_RETRY

    return DEFAULT_RETRY.with_deadline(CLIENT_TIMEOUT_SECONDS)


def _normal_type(field_type: str) -> str:
    return _SAME_TYPE.get(field_type.upper(), field_type.upper())


def source_fields(params: PipelineParams, client) -> list:
    """SchemaFields of the source: the table's, or the query's from a dry run (free, reads nothing)."""
    from google.api_core import exceptions
    from google.cloud import bigquery

    if params.input_table:
        try:
            return list(client.get_table(_table_id(params.input_table, client.project),
                                         retry=_retry(), timeout=CLIENT_TIMEOUT_SECONDS).schema)
        except exceptions.NotFound:
            raise ParameterError("input_table", params.input_table, "an existing table") from None
    config = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False, use_legacy_sql=False)
    try:
        return list(client.query(params.query, job_config=config, retry=_retry(),
                                 timeout=CLIENT_TIMEOUT_SECONDS).schema)
    except exceptions.GoogleAPICallError as exc:
        raise ParameterError("query", params.query, f"a standard-SQL query BigQuery accepts: {exc}") from None


def check_source_schema(params: PipelineParams, client) -> None:
    """Every column the parameters name exists, with a BigQuery type the pipeline can use."""
    fields = {field.name: field for field in source_fields(params, client)}
    require_columns(params, list(fields))
    roles = [(name, getattr(params, name)) for name in ("key_column", "time_column", "date_column", "target")]
    roles += [("features", feature) for feature in params.features]
    for role, column in roles:
        field = fields[column]
        field_type = _normal_type(field.field_type)
        if field.mode == "REPEATED" or field_type not in {_normal_type(t) for t in ROLE_TYPES[role]}:
            kind = f"REPEATED {field_type}" if field.mode == "REPEATED" else field_type
            allowed = ", ".join(sorted(ROLE_TYPES[role]))
            raise ParameterError(role, column if role != "features" else ",".join(params.features),
                                 f"column {column!r} is {kind} in BigQuery; the pipeline can use {allowed}")


def _table_id(spec: str, default_project: str | None) -> str:
    project, dataset, table = parse_table(spec, default_project)
    return f"{project}.{dataset}.{table}" if project else f"{dataset}.{table}"


def _check_target_schema(param: str, spec: str, existing: list, wanted: pa.Schema) -> None:
    types = {field.name: _normal_type(field.field_type) for field in existing}
    for field in wanted:
        need = bigquery_type(field.type)
        if types.get(field.name) != need:
            found = types.get(field.name, "missing")
            raise ParameterError(param, spec, f"a new table or one whose schema matches this output: column "
                                 f"{field.name!r} is {found} there, the pipeline writes {need}")


def _run_rows(client, table_id: str, run_id: str, statement: str):
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("run_id", "STRING", run_id)])
    job = client.query(f"{statement} `{table_id}` WHERE {RUN_ID_COLUMN} = @run_id", job_config=config,
                       retry=_retry(), timeout=CLIENT_TIMEOUT_SECONDS)
    return job.result(timeout=CLIENT_TIMEOUT_SECONDS, retry=_retry())


def create_table(client, table_id: str, schema: pa.Schema, layout: dict) -> None:
    """Creates a target table with its partitioning and clustering before any work. Beam passes the
    same layout to its load jobs and table creation (CREATE_IF_NEEDED) too; creating it here keeps
    the layout whatever the write method, and fails early without the permission to create it."""
    from google.cloud import bigquery as bq

    table = bq.Table(table_id, schema=[bq.SchemaField(f["name"], f["type"], mode=f["mode"])
                                       for f in table_schema(schema)["fields"]])
    if "timePartitioning" in layout:
        partitioning = layout["timePartitioning"]
        table.time_partitioning = bq.TimePartitioning(type_=partitioning["type"], field=partitioning["field"])
    if "clustering" in layout:
        table.clustering_fields = layout["clustering"]["fields"]
    client.create_table(table, exists_ok=True, retry=_retry(), timeout=CLIENT_TIMEOUT_SECONDS)


def prepare_target(params: PipelineParams, client, name: str, spec: str) -> None:
    """An existing target table must fit the output; then the write disposition and run-id rules."""
    from google.api_core import exceptions

    param, table_id = OUTPUT_TABLE_PARAMS[name], _table_id(spec, client.project)
    try:
        table = client.get_table(table_id, retry=_retry(), timeout=CLIENT_TIMEOUT_SECONDS)
    except exceptions.NotFound:
        create_table(client, table_id, sinks.output_schemas(params)[name], table_layout(params, name))
        return
    _check_target_schema(param, spec, table.schema, sinks.output_schemas(params)[name])
    if params.write_disposition == "WRITE_EMPTY" and table.num_rows:
        raise ParameterError("write_disposition", params.write_disposition,
                             f"WRITE_APPEND or WRITE_TRUNCATE: {spec} already holds {table.num_rows} rows")
    if params.write_disposition != "WRITE_APPEND":
        return
    existing = next(iter(_run_rows(client, table_id, params.run_id, "SELECT COUNT(*) FROM")))[0]
    if not existing:
        return
    if params.if_run_exists == "fail":
        raise ParameterError("run_id", params.run_id,
                             f"a run id with no rows in {spec} ({existing} rows of this run are there; "
                             "--if_run_exists=replace deletes them and writes this run again)")
    _run_rows(client, table_id, params.run_id, "DELETE FROM")


def prepare(params: PipelineParams, options: PipelineOptions, kind: str) -> None:
    """The BigQuery checks that must pass before any work; nothing to do without BigQuery."""
    targets = {} if params.plan_only else output_tables(params)  # a plan writes no results
    if kind != "bigquery" and not targets:
        return
    client = make_client(options.view_as(GoogleCloudOptions).project)
    if kind == "bigquery":
        check_source_schema(params, client)
    for name, spec in targets.items():
        prepare_target(params, client, name, spec)
