"""BigQuery in and out with Beam's native IO, as in the article.

- Source: `--query` (standard SQL) or `--input_table`, read with `beam.io.ReadFromBigQuery`
  (Storage Read API by default, or an export job), batched into the same DataFrame chunks as the
  other sources.
- Sinks: predictions, metrics, ledger and rejected rows, each to this job's staging table of its
  table when named, with `beam.io.WriteToBigQuery`, schemas and layout from `pipeline.io.warehouse.bigquery`;
  the publish step swaps the staged rows into the tables (pipeline.io.warehouse.bigquery_swap).
"""

from __future__ import annotations

import datetime

import apache_beam as beam
import pandas as pd
import pyarrow as pa
from apache_beam.io.gcp.bigquery import BigQueryDisposition, BigQueryQueryPriority, ReadFromBigQuery, WriteToBigQuery
from apache_beam.io.gcp.internal.clients.bigquery import DatasetReference
from apache_beam.io.gcp.bigquery_tools import RetryStrategy
from apache_beam.options.pipeline_options import GoogleCloudOptions

from pipeline.io.outputs import labels, sinks
from pipeline.io.warehouse.bigquery import parse_dataset, table_layout, table_schema
from pipeline.io.warehouse.bigquery_swap import StagedOutputs
from pipeline.io.columns import CHUNK_ROWS
from pipeline.params.values import PipelineParams


def read_transform(params: PipelineParams, default_project: str | None = None) -> ReadFromBigQuery:
    """Beam's BigQuery read for --input_table or --query (in --bq_temp_dataset when given, at
    --bq_query_priority)."""
    direct = params.bq_read_method == ReadFromBigQuery.Method.DIRECT_READ
    kwargs = {"method": params.bq_read_method}
    if not direct and params.bq_temp_location:
        kwargs["gcs_location"] = params.bq_temp_location
    if params.input_table:
        kwargs["table"] = params.input_table
        if direct:  # the Storage Read API sends only these columns
            kwargs["selected_fields"] = list(params.columns)
    else:
        kwargs.update(query=params.query, use_standard_sql=True,
                      query_priority=getattr(BigQueryQueryPriority, params.bq_query_priority))
        if params.bq_temp_dataset:
            project, dataset = parse_dataset(params.bq_temp_dataset, default_project)
            kwargs["temp_dataset"] = DatasetReference(projectId=project, datasetId=dataset)
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
                | "ReadFromBigQuery" >> read_transform(
                    self._params, pbegin.pipeline.options.view_as(GoogleCloudOptions).project)
                | "Batch" >> beam.BatchElements(min_batch_size=1000, max_batch_size=CHUNK_ROWS)
                | "ToFrames" >> beam.Map(rows_to_frame, self._params.columns))


def _json_value(value):
    return value.isoformat() if isinstance(value, (datetime.date, datetime.datetime)) else value


def bigquery_rows(table: pa.Table) -> list[dict]:
    """Row dicts of an output's Arrow table (sinks.ToArrowTables: the same conversion as the file
    outputs, NaN -> NULL, dates as dates), JSON-ready for load files and insertAll."""
    return [{name: _json_value(value) for name, value in row.items()} for row in table.to_pylist()]


def _fail_on_rejected_insert(failed: tuple):
    destination, row, errors = failed
    raise RuntimeError(f"BigQuery refused a row for {destination}: {errors} row={row}")


class WriteTable(beam.PTransform):
    """One output (DataFrames or row dicts) -> one existing BigQuery table (this job's staging table)
    with the output's schema, with `constants` (the lineage columns) on every row. Returns what is
    complete only once the rows are in the table: the load and copy jobs (FILE_LOADS, each waited
    for by Beam) or the refused rows (STREAMING_INSERTS, flushed at the end of each bundle)."""

    def __init__(self, params: PipelineParams, table: str, schema: pa.Schema, layout: dict, constants: dict):
        super().__init__()
        self._params, self._table, self._schema, self._layout = params, table, schema, layout
        self._constants = constants

    def expand(self, elements):
        params, schema = self._params, self._schema
        streaming = params.bq_write_method == WriteToBigQuery.Method.STREAMING_INSERTS
        temp = params.bq_temp_location
        result = (elements
                  | "Batch" >> sinks.ToArrowTables(schema, self._constants,
                                                   labeller=labels.Labeller.from_params(params))
                  | "ToRows" >> beam.FlatMap(bigquery_rows)
                  | "Write" >> WriteToBigQuery(
                      self._table,
                      schema=table_schema(schema),
                      # Created at launch with an expiration; the swap applies --write_disposition.
                      create_disposition=BigQueryDisposition.CREATE_NEVER,
                      write_disposition=BigQueryDisposition.WRITE_APPEND,
                      method=params.bq_write_method,
                      additional_bq_parameters=self._layout,
                      custom_gcs_temp_location=temp,
                      # Beam insists on a gs:// temp location when validating; local runs pass a local one.
                      validate=temp is None or temp.startswith("gs://"),
                      insert_retry_strategy=RetryStrategy.RETRY_ON_TRANSIENT_ERROR))
        if streaming:  # a row BigQuery refuses fails the job, with BigQuery's reason, instead of vanishing
            return (result.failed_rows_with_errors,
                    result.failed_rows_with_errors | "FailOnRefusedInserts" >> beam.Map(_fail_on_rejected_insert))
        return result.destination_load_jobid_pairs, result.destination_copy_jobid_pairs


class WriteBigQueryOutputs(beam.PTransform):
    """Writes each output that has a --*_table parameter to this job's staging table of that table,
    with the run's lineage columns on every row, as in the file outputs. Returns one PCollection that
    is complete once every row is staged: the publish step waits for it before the swap."""

    def __init__(self, params: PipelineParams, lineage_columns: dict, staged: StagedOutputs):
        super().__init__()
        self._params, self._columns, self._staged = params, lineage_columns, staged

    def expand(self, outputs: dict):
        params, schemas, columns = self._params, sinks.output_schemas(self._params), self._columns
        done = []
        for table in self._staged.tables:
            name = table.output
            written = outputs[name] | f"ToBigQuery_{name}" >> WriteTable(
                params, self._staged.staging_spec(name), schemas[name], table_layout(params, name), columns)
            done += [pcoll | f"Staged_{name}_{i}" >> beam.Map(lambda _, name=name: name)
                     for i, pcoll in enumerate(written)]
        return done | "AllStaged" >> beam.Flatten()
