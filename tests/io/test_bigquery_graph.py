"""The BigQuery path without a server: the query read and the writes in DataflowRunner's
offline dry-run graph, and the pieces that need no BigQuery at all.

bqemulator cannot serve Beam's `ReadFromBigQuery(query=...)` (it never writes query
results into the destination table Beam asks for), so the query read is checked
here, in the graph Dataflow would receive: `--runner=DataflowRunner --dry_run=True`
builds and translates the job offline; `result.job.proto_pipeline` is inspected.
What the emulator does run is in tests/test_bigquery.py.
"""

from __future__ import annotations

import datetime
import decimal
import os
import re

import apache_beam as beam
import pandas as pd
import pytest
from apache_beam.portability.api import beam_runner_api_pb2

from pipeline.io.warehouse import bigquery
from pipeline.stages.prepare import rows
from pipeline import run
from pipeline.io.outputs import labels, sinks
from pipeline.params.catalog import PARAMS_BY_NAME
from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from pipeline.io.warehouse import bigquery_beam
from pipeline import runner
from tests.helpers import ROOT

pytestmark = pytest.mark.timeout(300)

DRY_RUN = ["--runner=DataflowRunner", "--dry_run=True", "--project=test-project", "--region=us-central1",
           "--temp_location=gs://bucket/tmp",
           "--sdk_container_image=us-central1-docker.pkg.dev/test-project/repo/many-models:test"]
ARTICLE_QUERY = "SELECT year,date,shop_id,sales,attr1,attr2,attr3\nFROM dataset.table"
README = os.path.join(ROOT, "README.md")
SQL_DIR = os.path.join(ROOT, "sql")


def dry_run_display_data(argv: list[str], whole_pipeline: bool = True) -> dict[tuple[str, str], object]:
    """{(transform name, display key): value} of the Dataflow job graph built offline:
    the whole pipeline, or only its BigQuery source."""
    params, beam_args = parse_args([*argv, *DRY_RUN])
    options = runner.pipeline_options(beam_args)
    kind = run.source.resolve_source(params, "DataflowRunner")
    pipeline = beam.Pipeline(options=options)
    if whole_pipeline:
        run.build(pipeline, params, kind)
    else:
        pipeline | "ReadSource" >> run.source.ReadSource(params, kind)
    proto = pipeline.run().job.proto_pipeline
    found = {}
    for transform in proto.components.transforms.values():
        for item in transform.display_data:
            label = beam_runner_api_pb2.LabelledPayload.FromString(item.payload)
            value = label.WhichOneof("value")
            found[(transform.unique_name, label.key)] = getattr(label, value) if value else None
    return found


def values_of(display: dict, key: str, under: str) -> set:
    return {value for (name, k), value in display.items() if k == key and name.startswith(under)}


READ = "ReadSource/BigQuery/ReadFromBigQuery/Read"


def test_query_read_and_writes_in_the_dataflow_dry_run_graph():
    display = dry_run_display_data([
        f"--query={ARTICLE_QUERY}", "--run_id=r1",
        "--output_table=my-project:results.predictions", "--metrics_table=my-project:results.metrics"])
    assert values_of(display, "query", READ) == {ARTICLE_QUERY}
    assert values_of(display, "method", READ) == {"DIRECT_READ"}  # the default
    assert values_of(display, "use_legacy_sql", READ) == {False}  # standard SQL
    for output in ("predictions", "metrics"):  # to this job's staging tables, created at launch
        write = f"WriteBigQuery/ToBigQuery_{output}/Write"
        (table,) = values_of(display, "table", write)
        assert re.fullmatch(rf"my-project:results\.{output}__staging_r1_[0-9a-f]{{8}}", table), table
        assert values_of(display, "write_disposition", write) >= {"WRITE_APPEND"}
        assert values_of(display, "create_disposition", write) >= {"CREATE_NEVER"}
        assert "CREATE_IF_NEEDED" not in values_of(display, "create_disposition", write)
    layout = values_of(display, "additional_bq_params", "WriteBigQuery/ToBigQuery_predictions/Write")
    assert layout and all("'field': 'date'" in v and "'shop_id', 'run_id'" in v for v in layout)


def producers_of_side_inputs(argv: list[str], consumer: str) -> set[str]:
    """The transforms whose outputs the ParDo `consumer` reads as side inputs, in the dry-run graph."""
    params, beam_args = parse_args([*argv, *DRY_RUN])
    pipeline = beam.Pipeline(options=runner.pipeline_options(beam_args))
    run.build(pipeline, params, run.source.resolve_source(params, "DataflowRunner"))
    components = pipeline.run().job.proto_pipeline.components
    producer = {pcoll: t.unique_name for t in components.transforms.values() if not t.subtransforms
                for pcoll in t.outputs.values()}
    (pardo,) = [t for t in components.transforms.values() if t.unique_name == consumer]
    side = beam_runner_api_pb2.ParDoPayload.FromString(pardo.spec.payload).side_inputs
    return {producer[pardo.inputs[name]] for name in side}


def test_the_publish_step_waits_for_every_staged_bigquery_row():
    producers = producers_of_side_inputs([f"--query={ARTICLE_QUERY}", "--run_id=r1",
                                          "--output_table=my-project:results.predictions",
                                          "--ledger_table=my-project:results.ledger"], "PublishOutputs/Publish")
    assert "WriteBigQuery/AllStaged" in producers, producers


def test_query_read_with_export_in_the_dataflow_dry_run_graph():
    display = dry_run_display_data([f"--query={ARTICLE_QUERY}", "--bq_read_method=EXPORT"], whole_pipeline=False)
    assert values_of(display, "query", READ) == {ARTICLE_QUERY}
    assert values_of(display, "method", READ) == {"EXPORT"}
    assert values_of(display, "use_legacy_sql", READ) == {False}
    assert values_of(display, "export_file_format", READ) == {"AVRO"}  # DATE/NUMERIC keep their types


def test_on_dataflow_the_query_goes_to_bigquery_by_default():
    assert run.source.resolve_source(parse_args([])[0], "DataflowRunner") == "bigquery"
    assert run.source.resolve_source(parse_args(["--input_table=d.t"])[0], None) == "bigquery"
    assert run.source.resolve_source(parse_args([])[0], None) == "duckdb"


@pytest.mark.parametrize("spec, parts", [
    ("my-project:dataset.table", ("my-project", "dataset", "table")),
    ("my-project.dataset.table", ("my-project", "dataset", "table")),
    ("dataset.table", ("default-project", "dataset", "table")),
])
def test_table_specs(spec, parts):
    params, _ = parse_args([f"--output_table={spec}"])
    assert bigquery.parse_table(params.output_table, "default-project") == parts


@pytest.mark.parametrize("argv, name", [
    (["--output_table=table_without_dataset"], "output_table"),
    (["--metrics_table=my-project:dataset"], "metrics_table"),
    (["--input_table=Bad_Project:dataset.table"], "input_table"),
    (["--ledger_table=dataset.table; DROP"], "ledger_table"),
    (["--write_disposition=WRITE_SOMETIMES"], "write_disposition"),
    (["--bq_write_method=STORAGE_WRITE_API"], "bq_write_method"),
    (["--bq_read_method=QUERY"], "bq_read_method"),
    (["--bq_write_method=STREAMING_INSERTS", "--write_disposition=WRITE_TRUNCATE"], "write_disposition"),
    (["--input_table=d.t", "--input=x.parquet"], "input_table"),
    (["--input_table=d.t", "--source=duckdb"], "source"),
    (["--output_table=d.t", "--metrics_table=d.t"], "output_table"),
])
def test_bad_bigquery_parameters_fail_naming_the_parameter(argv, name):
    with pytest.raises(ParameterError) as error:
        parse_args(argv)
    assert error.value.name == name


def test_bigquery_parameters_are_declared_for_the_template():
    assert {PARAMS_BY_NAME[n].param_type for n in ("input_table", "output_table", "metrics_table",
                                                   "ledger_table", "rejected_table")} == {"BIGQUERY_TABLE"}
    for name in ("bq_read_method", "bq_write_method", "write_disposition", "if_run_exists"):
        assert PARAMS_BY_NAME[name].param_type == "ENUM" and PARAMS_BY_NAME[name].choices


def test_table_schemas_derive_from_the_output_schemas():
    params, _ = parse_args(["--target=revenue", "--features=a,b", "--date_column=day", "--key_column=store"])
    schemas = sinks.output_schemas(params)
    predictions = {f["name"]: f["type"] for f in bigquery.table_schema(schemas["predictions"])["fields"]}
    assert predictions == {"store": "STRING", "day": "DATE", "year": "INTEGER", "period_label": "STRING",
                           "window_start": "INTEGER",
                           "window_end": "INTEGER", "predicted": "FLOAT", "actual": "FLOAT",
                           "baseline": "FLOAT", "seasonal_naive": "FLOAT", "mase_scale": "FLOAT",
                           "model": "STRING", "run_id": "STRING",
                           "params_hash": "STRING", "code_version": "STRING"}
    for name, schema in schemas.items():
        assert [f["name"] for f in bigquery.table_schema(schema)["fields"]] == schema.names, name
    assert bigquery.table_layout(params, "predictions") == {
        "timePartitioning": {"type": "DAY", "field": "day"}, "clustering": {"fields": ["store", "run_id"]}}
    assert bigquery.table_layout(params, "metrics") == {}


def test_rows_as_beam_reads_them_from_bigquery_validate_like_file_rows():
    """DATE -> datetime.date, TIMESTAMP -> aware datetime, NUMERIC -> Decimal, INT64 -> int."""
    params, _ = parse_args(["--run_id=r"])
    utc = datetime.timezone.utc
    read = [
        {"year": 2015, "date": datetime.date(2015, 3, 1), "shop_id": "S1", "sales": decimal.Decimal("12.50"),
         "attr1": decimal.Decimal("1.5"), "attr2": 0.25, "attr3": "7"},
        {"year": 2015, "date": datetime.date(2015, 3, 2), "shop_id": "S1", "sales": 13.0,
         "attr1": None, "attr2": 0.5, "attr3": "n/a"},
        {"year": 2015, "date": datetime.date(2015, 3, 3), "shop_id": "S1", "sales": None,
         "attr1": decimal.Decimal("2"), "attr2": 1.0, "attr3": "1"},
    ]
    frame = bigquery_beam.rows_to_frame(read, params.columns)
    assert list(frame.columns) == list(params.columns)
    valid, rejected, counts = rows.validate_chunk(frame, params)
    assert valid["sales"].tolist() == [12.5, 13.0]
    assert valid["attr1"].tolist() == [1.5, 0.0] and valid["attr3"].tolist() == [7.0, 0.0]
    assert list(pd.to_datetime(valid["date"]).dt.date) == [datetime.date(2015, 3, 1), datetime.date(2015, 3, 2)]
    assert rejected["reason"].tolist() == ["bad_target"]
    assert counts["feature_values_coerced"] == 1 and counts["feature_values_missing"] == 1
    # A TIMESTAMP date column: aware UTC datetimes.
    stamped = [{**row, "date": datetime.datetime(2015, 3, 1 + i, 0, 0, tzinfo=utc)} for i, row in enumerate(read)]
    valid, _, _ = rows.validate_chunk(bigquery_beam.rows_to_frame(stamped, params.columns), params)
    assert list(pd.to_datetime(valid["date"]).dt.date) == [datetime.date(2015, 3, 1), datetime.date(2015, 3, 2)]


def test_written_rows_are_json_ready_and_nan_becomes_null():
    params, _ = parse_args(["--run_id=r"])
    frame = pd.DataFrame({"shop_id": ["S1"], "date": [pd.Timestamp("2016-02-29")], "year": [2016],
                          "window_start": [2014], "window_end": [2016], "predicted": [1.5],
                          "actual": [2.25], "baseline": [float("nan")], "model": ["ridge"], "run_id": ["r"]})
    table = sinks.to_table(frame, sinks.output_schemas(params)["predictions"], labels.Labeller.from_params(params))
    assert bigquery_beam.bigquery_rows(table) == [{
        "shop_id": "S1", "date": "2016-02-29", "year": 2016, "period_label": "2016", "window_start": 2014,
        "window_end": 2016,
        "predicted": 1.5, "actual": 2.25, "baseline": None, "seasonal_naive": None, "mase_scale": None,
        "model": "ridge", "run_id": "r",
        "params_hash": None, "code_version": None}]


def test_readme_shows_the_rmse_sql_as_tested():
    with open(README) as handle:
        readme = handle.read()
    for name in ("rmse_by_shop_and_year.sql", "rmse_by_year.sql"):
        with open(os.path.join(SQL_DIR, name)) as handle:
            assert handle.read().strip() in readme, name


def test_query_reads_in_the_given_temporary_dataset_at_the_given_priority():
    from apache_beam.io.gcp.bigquery import BigQueryQueryPriority

    from pipeline.io.warehouse.bigquery_beam import read_transform

    argv = [f"--query={ARTICLE_QUERY}", "--bq_temp_dataset=my-project:scratch", "--bq_query_priority=INTERACTIVE"]
    read = read_transform(parse_args(argv)[0], "launch-project")
    dataset = read._kwargs["temp_dataset"]
    assert (dataset.projectId, dataset.datasetId) == ("my-project", "scratch")
    assert read._kwargs["query_priority"] == BigQueryQueryPriority.INTERACTIVE
    default = read_transform(parse_args([f"--query={ARTICLE_QUERY}", "--bq_temp_dataset=scratch"])[0], "launch-project")
    assert (default._kwargs["temp_dataset"].projectId, default._kwargs["query_priority"]) == (
        "launch-project", BigQueryQueryPriority.BATCH)  # the job's project; Beam's default priority
    assert "temp_dataset" not in read_transform(parse_args([f"--query={ARTICLE_QUERY}"])[0], "p")._kwargs
    # DataflowRunner translates the read with both (the whole graph, offline).
    display = dry_run_display_data(argv, whole_pipeline=False)
    assert values_of(display, "query", READ) == {ARTICLE_QUERY}
    with pytest.raises(ParameterError, match="beam_temp_dataset_"):
        parse_args(["--bq_temp_dataset=p-roject1:beam_temp_dataset_x"])
