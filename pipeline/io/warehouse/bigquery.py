"""BigQuery tables, schemas and the checks before any work (the Beam transforms are in `bigquery_beam`).

- Table schemas are derived from `sinks.output_schemas` (the one place output schemas are
  declared); the predictions table is partitioned by date and clustered by key.
- Before any work (`check`): the source's column names and BigQuery types, the
  existing target tables' schemas, and the run-id rule: with WRITE_APPEND a run
  id that already has rows in a target table is refused (--if_run_exists=fail), or its rows
  are replaced when the job publishes (replace; pipeline.io.warehouse.bigquery_swap: nothing is deleted
  at launch). `check` changes nothing; it returns the `TargetChanges` (tables to create) that
  the launcher applies only once every check, files and the run id's lease included, has passed.
"""

from __future__ import annotations

import dataclasses
import re

import pyarrow as pa
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from pipeline.io.outputs import sinks
from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.io.columns import require_columns

# Which --*_table parameter names the table of each output.
OUTPUT_TABLE_PARAMS = {"predictions": "output_table", "metrics": "metrics_table",
                       "ledger": "ledger_table", "rejected_rows": "rejected_table",
                       "selection": "selection_table", "forecasts": "forecast_table"}
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
    if name not in ("predictions", "forecasts"):
        return {}
    return {"timePartitioning": {"type": "DAY", "field": params.date_column},
            "clustering": {"fields": [params.key_column, RUN_ID_COLUMN]}}


# -- checks before any work ----------------------------------------------------

def make_client(project: str | None):
    """The official BigQuery client (it honours BIGQUERY_EMULATOR_HOST, used by the tests)."""
    from google.cloud import bigquery

    return bigquery.Client(project=project)


def client_retry():
    from google.cloud.bigquery import DEFAULT_RETRY

    return DEFAULT_RETRY.with_deadline(CLIENT_TIMEOUT_SECONDS)


def _normal_type(field_type: str) -> str:
    return _SAME_TYPE.get(field_type.upper(), field_type.upper())


def principal(client, service_account: str | None = None) -> str:
    """Who the checks run as, for messages: the job's service account, else the client's credentials."""
    if service_account:
        return service_account
    email = getattr(getattr(client, "_credentials", None), "service_account_email", None)
    return email if email and email != "default" else "the credentials this launch runs with"


def explain_bigquery_error(exc: Exception, client, what: str, service_account: str | None = None) -> str:
    """What a failed BigQuery call says, in three kinds: not found, permission denied, invalid SQL."""
    from google.api_core import exceptions

    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, exceptions.NotFound):
        missing = re.search(r"(Dataset|Table) ([\w.:-]+)", message)
        missing_text = f"{missing.group(1).lower()} {missing.group(2)}" if missing else "a dataset or table it names"
        return (f"{what} over tables that exist: BigQuery found no {missing_text} (project {client.project}; "
                f"check the names and the location). BigQuery said: {message}")
    if isinstance(exc, exceptions.Forbidden):
        permission = re.search(r"bigquery\.[A-Za-z]+\.[A-Za-z]+", message)
        needed = permission.group(0) if permission else "bigquery.jobs.create and read access to the tables"
        return (f"{what} that {principal(client, service_account)} may run: permission denied ({needed}); "
                "grant it BigQuery Job User on the project and BigQuery Data Viewer on the datasets read. "
                f"BigQuery said: {message}")
    if isinstance(exc, exceptions.BadRequest):
        return f"{what} in valid BigQuery standard SQL: BigQuery said: {message}"
    return f"{what} that BigQuery accepts: {type(exc).__name__}: {message}"


def source_fields(params: PipelineParams, client, service_account: str | None = None) -> list:
    """SchemaFields of the source: the table's, or the query's from a dry run (free, reads nothing).
    A refusal says whether a dataset or table was not found, a permission is missing, or the SQL is invalid."""
    from google.api_core import exceptions
    from google.cloud import bigquery

    if params.input_table:
        try:
            return list(client.get_table(table_id(params.input_table, client.project),
                                         retry=client_retry(), timeout=CLIENT_TIMEOUT_SECONDS).schema)
        except exceptions.GoogleAPICallError as exc:
            raise ParameterError("input_table", params.input_table,
                                 explain_bigquery_error(exc, client, "a table", service_account)) from None
    config = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False, use_legacy_sql=False)
    try:
        return list(client.query(params.query, job_config=config, retry=client_retry(),
                                 timeout=CLIENT_TIMEOUT_SECONDS).schema)
    except exceptions.GoogleAPICallError as exc:
        raise ParameterError("query", params.query,
                             explain_bigquery_error(exc, client, "a query", service_account)) from None


def check_source_schema(params: PipelineParams, client, service_account: str | None = None) -> None:
    """Every column the parameters name exists, with a BigQuery type the pipeline can use."""
    fields = {field.name: field for field in source_fields(params, client, service_account)}
    require_columns(params, list(fields))
    roles = [(name, getattr(params, name)) for name in ("key_column", "time_column", "date_column", "target")
             if name != "time_column" or not params.period]  # --period: derived from the date, not read
    roles += [("features", feature) for feature in params.features]
    for role, column in roles:
        field = fields[column]
        field_type = _normal_type(field.field_type)
        if field.mode == "REPEATED" or field_type not in {_normal_type(t) for t in ROLE_TYPES[role]}:
            kind = f"REPEATED {field_type}" if field.mode == "REPEATED" else field_type
            allowed = ", ".join(sorted(ROLE_TYPES[role]))
            raise ParameterError(role, column if role != "features" else ",".join(params.features),
                                 f"column {column!r} is {kind} in BigQuery; the pipeline can use {allowed}")


def table_id(spec: str, default_project: str | None) -> str:
    """`project.dataset.table`, or `dataset.table` in the client's project when no project is known."""
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


def _run_row_count(client, table_id: str, run_id: str) -> int:
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("run_id", "STRING", run_id)])
    job = client.query(f"SELECT COUNT(*) FROM `{table_id}` WHERE {RUN_ID_COLUMN} = @run_id", job_config=config,
                       retry=client_retry(), timeout=CLIENT_TIMEOUT_SECONDS)
    return next(iter(job.result(timeout=CLIENT_TIMEOUT_SECONDS, retry=client_retry())))[0]


def create_table(client, table_id: str, schema: pa.Schema, layout: dict, expires=None) -> None:
    """Creates a table with its partitioning and clustering (and, for a staging table, its expiration)
    before any work. Beam passes the same layout to its load jobs too; creating it here keeps the
    layout whatever the write method, and fails early without the permission to create it."""
    from google.cloud import bigquery as bq

    table = bq.Table(table_id, schema=[bq.SchemaField(f["name"], f["type"], mode=f["mode"])
                                       for f in table_schema(schema)["fields"]])
    if "timePartitioning" in layout:
        partitioning = layout["timePartitioning"]
        table.time_partitioning = bq.TimePartitioning(type_=partitioning["type"], field=partitioning["field"])
    if "clustering" in layout:
        table.clustering_fields = layout["clustering"]["fields"]
    table.expires = expires
    client.create_table(table, exists_ok=True, retry=client_retry(), timeout=CLIENT_TIMEOUT_SECONDS)


@dataclasses.dataclass
class TargetChanges:
    """What the launch will change in BigQuery once every check has passed: the target tables to
    create. (Nothing is deleted at launch: pipeline.io.warehouse.bigquery_swap replaces a run's rows.)"""

    client: object = None
    create: list = dataclasses.field(default_factory=list)  # (table id, Arrow schema, layout)

    def apply(self) -> None:
        for table_id, schema, layout in self.create:
            create_table(self.client, table_id, schema, layout)


def prepare_target(params: PipelineParams, client, name: str, spec: str, changes: TargetChanges) -> None:
    """An existing target table must fit the output; then the write disposition and run-id rules.
    Changes nothing: what the launch is to change is added to `changes`."""
    from google.api_core import exceptions

    param, target = OUTPUT_TABLE_PARAMS[name], table_id(spec, client.project)
    try:
        table = client.get_table(target, retry=client_retry(), timeout=CLIENT_TIMEOUT_SECONDS)
    except exceptions.NotFound:
        changes.create.append((target, sinks.output_schemas(params)[name], table_layout(params, name)))
        return
    _check_target_schema(param, spec, table.schema, sinks.output_schemas(params)[name])
    if params.write_disposition == "WRITE_EMPTY" and table.num_rows:
        raise ParameterError("write_disposition", params.write_disposition,
                             f"WRITE_APPEND or WRITE_TRUNCATE: {spec} already holds {table.num_rows} rows")
    if params.write_disposition != "WRITE_APPEND":
        return
    existing = _run_row_count(client, target, params.run_id) if params.if_run_exists == "fail" else 0
    if existing:
        raise ParameterError("run_id", params.run_id,
                             f"a run id with no rows in {spec} ({existing} rows of this run are there; "
                             "--if_run_exists=replace replaces them with this run's rows when it publishes)")


def parse_dataset(spec: str, default_project: str | None) -> tuple[str | None, str]:
    """(project, dataset) of `project:dataset`, `project.dataset` or `dataset` (the default project)."""
    project, _, dataset = spec.replace(":", ".").rpartition(".")
    return project or default_project, dataset


def check_params(params: PipelineParams) -> None:
    """The BigQuery parameters fit together (no data or client needed)."""
    if params.input_table and params.input:
        raise ParameterError("input_table", params.input_table, "either --input_table or --input, not both")
    if params.input_table and params.source not in ("auto", "bigquery"):
        raise ParameterError("source", params.source, "auto or bigquery with --input_table")
    if params.bq_write_method == "STREAMING_INSERTS" and params.write_disposition != "WRITE_APPEND":
        raise ParameterError("write_disposition", params.write_disposition,
                             "WRITE_APPEND with --bq_write_method=STREAMING_INSERTS (streaming inserts only "
                             "append; use FILE_LOADS to truncate or to require empty tables)")
    named = list(output_tables(params).values())
    if len(set(named)) != len(named):
        raise ParameterError("output_table", params.output_table, "a different table for each output")


def check(params: PipelineParams, options: PipelineOptions, kind: str) -> TargetChanges:
    """The BigQuery checks that must pass before any work, over every table; changes nothing.
    Returns what to change once every other check has passed too (see TargetChanges)."""
    changes = TargetChanges()
    targets = {} if params.plan_only else output_tables(params)  # a plan writes no results
    if kind != "bigquery" and not targets:
        return changes
    cloud = options.view_as(GoogleCloudOptions)
    client = changes.client = make_client(cloud.project)
    if kind == "bigquery":
        check_source_schema(params, client, cloud.service_account_email)
    for name, spec in targets.items():
        prepare_target(params, client, name, spec, changes)
    return changes


def prepare(params: PipelineParams, options: PipelineOptions, kind: str) -> None:
    """`check`, then its changes (for callers with no other check to wait for)."""
    check(params, options, kind).apply()
