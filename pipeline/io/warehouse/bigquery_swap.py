"""BigQuery outputs published with the files: each job writes to its own staging tables, and its publish
step swaps their rows in, in one transaction over every table, or not at all.

- Launch (pipeline.run.prepare, once every check has passed and the run id's lease is this job's): one
  staging table per target table, `<table>__staging_<run id>_<publish id>` in the target's dataset, with
  the target's schema and layout and an expiration (STAGING_HOURS), so that the staging tables of a job
  that died go away on their own. Nothing is deleted at launch.
- The job writes its rows to the staging tables only (pipeline.io.warehouse.bigquery_beam): the target tables keep
  their rows while it runs, and a job that fails before its publish step leaves them untouched.
- Publish (pipeline.io.publishing.publish, after the lease and staged-files checks, before the files' commit record
  is swapped): one multi-statement query, `BEGIN TRANSACTION;` then for each table `DELETE` the rows of
  this run id (every row with WRITE_TRUNCATE) and `INSERT ... SELECT` the staging table's, `COMMIT
  TRANSACTION;`. A statement that fails rolls the whole transaction back: every table keeps its rows.
  A retried publish step runs it again to the same result. After the files' commit the staging tables
  are dropped, by the names this job gave them: never a table it did not create.

The run id is written into the script as a literal: RUN_ID_RE allows only letters, digits, `_`, `.` and
`-`, so it needs no escaping, and bqemulator (the tests) does not bind query parameters in multi-statement
queries, so the one script runs the same there and in BigQuery.
"""

from __future__ import annotations

import dataclasses
import datetime
import re

from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from pipeline.io.outputs import sinks
from pipeline.io.warehouse.bigquery import (CLIENT_TIMEOUT_SECONDS, RUN_ID_COLUMN, client_retry, create_table, make_client,
                                  output_tables, table_id, table_layout)
from pipeline.params.declare import RUN_ID_RE
from pipeline.params.values import PipelineParams

STAGING_MARK = "__staging_"
STAGING_HOURS = 7 * 24  # longer than any job should run: a job whose staging tables expired fails to publish
SWAP_SECONDS = 3600  # BigQuery cancels (and so rolls back) a swap still running after this
TABLE_NAME_LIMIT = 1024


def staging_name(target: str, run_id: str, token: str) -> str:
    """The staging table of `target` (`[project.]dataset.table`) for this run id and job token."""
    dataset, _, table = target.rpartition(".")
    suffix = f"{STAGING_MARK}{re.sub(r'[^A-Za-z0-9_]', '_', run_id)}_{token}"
    return f"{dataset}.{table[:TABLE_NAME_LIMIT - len(suffix)]}{suffix}"


def _literal(run_id: str) -> str:
    if not run_id or not re.fullmatch(RUN_ID_RE, run_id):
        raise ValueError(f"run id {run_id!r} is not one RUN_ID_RE allows")
    return f"'{run_id}'"


@dataclasses.dataclass(frozen=True)
class StagedTable:
    output: str  # the output's name: predictions, metrics, ...
    target: str
    staging: str
    columns: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class StagedOutputs:
    """This job's staging tables and how their rows replace the run's rows in the target tables."""

    project: str | None
    run_id: str
    truncate: bool  # WRITE_TRUNCATE: the tables hold this run only
    tables: tuple[StagedTable, ...]

    @classmethod
    def of(cls, params: PipelineParams, options: PipelineOptions, token: str) -> "StagedOutputs | None":
        """The staging tables of a job with this token (its publish id), or None when nothing goes to BigQuery."""
        if params.plan_only or not output_tables(params):
            return None
        project, schemas = options.view_as(GoogleCloudOptions).project, sinks.output_schemas(params)
        tables = []
        for name, spec in output_tables(params).items():
            target = table_id(spec, project)
            tables.append(StagedTable(name, target, staging_name(target, params.run_id, token),
                                      tuple(schemas[name].names)))
        return cls(project, params.run_id, params.write_disposition == "WRITE_TRUNCATE", tuple(tables))

    def staging_spec(self, output: str) -> str:
        """The staging table of `output` as Beam's WriteToBigQuery names a table."""
        staging = next(table.staging for table in self.tables if table.output == output)
        parts = staging.split(".")
        return f"{parts[0]}:{parts[1]}.{parts[2]}" if len(parts) == 3 else staging

    def create(self, client, params: PipelineParams, now: datetime.datetime | None = None) -> None:
        """Creates the (empty) staging tables, with the targets' schemas and layouts and an expiration."""
        now = now or datetime.datetime.now(datetime.timezone.utc)
        schemas = sinks.output_schemas(params)
        for table in self.tables:
            create_table(client, table.staging, schemas[table.output], table_layout(params, table.output),
                         expires=now + datetime.timedelta(hours=STAGING_HOURS))

    def script(self) -> str:
        """The swap: one transaction over every table."""
        which = "TRUE" if self.truncate else f"{RUN_ID_COLUMN} = {_literal(self.run_id)}"
        statements = ["BEGIN TRANSACTION;"]
        for table in self.tables:
            columns = ", ".join(f"`{column}`" for column in table.columns)
            statements += [f"DELETE FROM `{table.target}` WHERE {which};",
                           f"INSERT INTO `{table.target}` ({columns}) SELECT {columns} FROM `{table.staging}`;"]
        return "\n".join([*statements, "COMMIT TRANSACTION;"])

    def swap_in(self, client=None) -> None:
        """Replaces the run's rows in every target table by its staged rows, all or none; idempotent."""
        from google.cloud import bigquery

        client = client or make_client(self.project)
        config = bigquery.QueryJobConfig(use_legacy_sql=False, job_timeout_ms=SWAP_SECONDS * 1000)
        job = client.query(self.script(), job_config=config, retry=client_retry(), timeout=CLIENT_TIMEOUT_SECONDS)
        job.result(timeout=SWAP_SECONDS + CLIENT_TIMEOUT_SECONDS)

    def drop(self, client=None) -> None:
        """Drops this job's staging tables (those already gone are skipped)."""
        client = client or make_client(self.project)
        for table in self.tables:
            client.delete_table(table.staging, not_found_ok=True, retry=client_retry(),
                                timeout=CLIENT_TIMEOUT_SECONDS)
