"""BigQuery in and out against a real BigQuery wire protocol: bqemulator on 127.0.0.1.

What runs for real here, through Beam's own BigQuery IO re-pointed at the emulator
(tests/bq_emulator.py) and read back with the official google-cloud-bigquery client:
- the read path for `--input_table` with DIRECT_READ (Storage Read API over gRPC);
- the write path: full pipeline runs write predictions, metrics, ledger and rejected
  rows with FILE_LOADS and with STREAMING_INSERTS; schemas, partitioning/clustering,
  row counts and values are checked; the run-id rerun rule (fail / replace);
- the checks before any work: source column types (table schema and a query's
  dry-run schema), target table schemas, WRITE_EMPTY.

What does NOT run against the emulator: Beam's `ReadFromBigQuery(query=...)`.
bqemulator does not write query results into the destination table Beam asks for,
so a query read fails there with either method. Instead (a) the article's SQL and
our RMSE SQL run against the emulator through the official client and give the
expected rows (here), and (b) the Beam query read is checked in the DataflowRunner
dry-run graph (tests/test_bigquery_graph.py).
"""

from __future__ import annotations

import datetime
import io
import math
import os

import numpy as np
import pandas as pd
import pytest
from google.cloud import bigquery as bq_client

from pipeline.io.warehouse import bigquery
from pipeline.io.sources import sample_data
from pipeline.io.outputs import sinks
from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from pipeline.runner import pipeline_options
from tests.helpers.pipeline_runs import read_output, run_pipeline
from tests.helpers import ROOT

pytestmark = pytest.mark.timeout(240)  # the emulator answers errors with 500s that clients retry for minutes

PROJECT = "test-project"
SEED_TABLE = f"{PROJECT}.sales.daily"
SQL_DIR = os.path.join(ROOT, "sql")
WAIT = 30  # seconds, for every client call in these tests
SEED_SCHEMA = [
    bq_client.SchemaField("year", "INTEGER"), bq_client.SchemaField("date", "DATE"),
    bq_client.SchemaField("shop_id", "STRING"), bq_client.SchemaField("sales", "FLOAT"),
    bq_client.SchemaField("attr1", "NUMERIC"), bq_client.SchemaField("attr2", "FLOAT64"),
    bq_client.SchemaField("attr3", "STRING"),
]


def seed_frame() -> pd.DataFrame:
    """A small slice of the embedded sample, mess included (missing values, 'n/a', short shops),
    plus two rows validation must reject (no target, no key)."""
    frame = sample_data.generate(n_shops=6, years=4)
    bad = frame.head(2).assign(date=[datetime.date(2013, 12, 30), datetime.date(2013, 12, 31)])
    bad.loc[bad.index[0], "sales"] = None
    bad.loc[bad.index[1], "shop_id"] = None
    return pd.concat([frame, bad], ignore_index=True)


def query_rows(client, sql: str, **parameters) -> list[dict]:
    config = bq_client.QueryJobConfig(query_parameters=[
        bq_client.ScalarQueryParameter(name, "STRING", value) for name, value in parameters.items()])
    return [dict(row.items()) for row in client.query(sql, job_config=config, timeout=WAIT).result(timeout=WAIT)]


def table_frame(client, table: str) -> pd.DataFrame:
    return pd.DataFrame(query_rows(client, f"SELECT * FROM `{table}`"))


@pytest.fixture(scope="module")
def bq(bq_emulator):
    """The emulator, seeded, with Beam's BigQuery clients re-pointed at it for this module."""
    client = bq_emulator.client()
    client.create_dataset("sales", exists_ok=True)
    frame = seed_frame()
    records = frame.assign(date=frame["date"].astype(str)).to_json(orient="records", lines=True)
    client.create_table(bq_client.Table(SEED_TABLE, schema=SEED_SCHEMA))
    # A resumable upload: the emulator rejects the client's multipart uploads.
    job = client.load_table_from_file(
        io.BytesIO(records.encode()), SEED_TABLE, size=None, rewind=True,
        job_config=bq_client.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON", schema=SEED_SCHEMA))
    job.result(timeout=WAIT)
    with pytest.MonkeyPatch.context() as monkeypatch, bq_emulator.point_beam_at(monkeypatch):
        yield bq_emulator
    # Beam looks up the GCE metadata server for job labels; the guard refused it, nothing else was tried.
    assert set(bq_emulator.blocked_hosts) <= {"metadata", "metadata.google.internal"}, bq_emulator.blocked_hosts


@pytest.fixture(scope="module")
def client(bq):
    return bq.client()


def bq_args(tmp_path, dataset: str, *extra: str) -> list[str]:
    tables = {"output_table": "predictions", "metrics_table": "metrics", "ledger_table": "ledger",
              "rejected_table": "rejected_rows"}
    return [*(f"--{param}={PROJECT}:{dataset}.{table}" for param, table in tables.items()),
            f"--bq_temp_location={tmp_path / 'bq_temp'}", f"--project={PROJECT}", "--model=ridge", *extra]


@pytest.fixture(scope="module")
def file_loads_run(bq, client, tmp_path_factory):
    """One run reading the seed table with DIRECT_READ and writing every output with FILE_LOADS,
    and one reference run of the same rows from a Parquet file (no BigQuery)."""
    tmp_path = tmp_path_factory.mktemp("file_loads")
    client.create_dataset("results", exists_ok=True)
    summary = run_pipeline(tmp_path / "out", f"--input_table={PROJECT}:sales.daily", "--bq_read_method=DIRECT_READ",
                           "--bq_write_method=FILE_LOADS", "--run_id=run-file-loads",
                           *bq_args(tmp_path, "results"))
    parquet = tmp_path / "seed.parquet"
    seed_frame().to_parquet(parquet, index=False)
    reference = run_pipeline(tmp_path / "reference", f"--input={parquet}", "--model=ridge",
                             "--run_id=run-file-loads")
    return {"out": str(tmp_path / "out"), "reference": str(tmp_path / "reference"),
            "summary": summary, "reference_summary": reference}


def by_row(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(date=pd.to_datetime(frame["date"]).dt.date)
    return frame.sort_values(["shop_id", "window_start", "date"], ignore_index=True)


def test_direct_read_of_input_table_gives_the_same_results_as_the_file_source(file_loads_run, bq, client):
    summary, reference = file_loads_run["summary"], file_loads_run["reference_summary"]
    assert summary["source"] == "bigquery"
    assert summary["rows_read"] == len(seed_frame()) == reference["rows_read"]
    assert summary["counts_reconcile"] == {"rows": True, "groups": True}
    for name in ("rows_used", "rows_rejected", "rows_rejected_by_reason", "feature_values_coerced",
                 "groups_trained", "groups_skipped", "rmse_by_test_period"):
        assert summary[name] == reference[name], name
    assert summary["rows_rejected_by_reason"]  # the sample's mess reached validation through BigQuery
    read = by_row(read_output(file_loads_run["out"], "predictions")).drop(columns=["params_hash"])
    expected = by_row(read_output(file_loads_run["reference"], "predictions")).drop(columns=["params_hash"])
    pd.testing.assert_frame_equal(read, expected)  # params_hash differs: --input_table vs --input
    # Beam's DIRECT_READ cleanup asked to delete the seed dataset; the fixture's guard refused.
    assert "sales" in bq.refused_deletes
    assert client.get_table(SEED_TABLE, timeout=WAIT).num_rows == len(seed_frame())


def test_file_loads_write_every_output_with_derived_schemas(file_loads_run, client):
    schemas = sinks.output_schemas(parse_args(["--run_id=x"])[0])
    for name, table_name in (("predictions", "predictions"), ("metrics", "metrics"), ("ledger", "ledger"),
                             ("rejected_rows", "rejected_rows")):
        table = client.get_table(f"{PROJECT}.results.{table_name}", timeout=WAIT)
        assert [(f.name, f.field_type) for f in table.schema] == [
            (f.name, bigquery.bigquery_type(f.type)) for f in schemas[name]], name
        written = table_frame(client, f"{PROJECT}.results.{table_name}")
        assert len(written) == len(read_output(file_loads_run["out"], name)) > 0, name
        assert set(written["run_id"]) == {"run-file-loads"}
    predictions = client.get_table(f"{PROJECT}.results.predictions", timeout=WAIT)
    types = {f.name: f.field_type for f in predictions.schema}
    assert types["actual"] == types["predicted"] == "FLOAT" and types["date"] == "DATE"
    assert (predictions.time_partitioning.type_, predictions.time_partitioning.field) == ("DAY", "date")
    assert predictions.clustering_fields == ["shop_id", "run_id"]
    written = by_row(table_frame(client, f"{PROJECT}.results.predictions"))
    files = by_row(read_output(file_loads_run["out"], "predictions"))
    pd.testing.assert_frame_equal(written[files.columns], files, check_dtype=False)
    metrics = table_frame(client, f"{PROJECT}.results.metrics").sort_values(["shop_id", "window_start"])
    file_metrics = read_output(file_loads_run["out"], "metrics").sort_values(["shop_id", "window_start"])
    np.testing.assert_allclose(metrics["rmse"], file_metrics["rmse"], rtol=1e-12)


def test_article_query_and_rmse_sql_on_the_emulator(file_loads_run, client):
    article = "SELECT year,date,shop_id,sales,attr1,attr2,attr3\nFROM sales.daily"
    rows = pd.DataFrame(query_rows(client, article))
    seed = seed_frame()
    columns = ["shop_id", "date", "sales", "year"]
    pd.testing.assert_frame_equal(
        rows[columns].sort_values(columns, ignore_index=True),
        seed[columns].sort_values(columns, ignore_index=True), check_dtype=False)

    predictions = read_output(file_loads_run["out"], "predictions")
    errors = predictions.assign(sq=(predictions["predicted"] - predictions["actual"]) ** 2,
                                base_sq=(predictions["baseline"] - predictions["actual"]) ** 2)
    expected = errors.groupby(["shop_id", "year"]).agg(n=("sq", "size"), sse=("sq", "sum"),
                                                        base_sse=("base_sq", "sum"))
    with open(os.path.join(SQL_DIR, "rmse_by_shop_and_year.sql")) as handle:
        sql = handle.read().replace("dataset.predictions", f"`{PROJECT}.results.predictions`")
    got = query_rows(client, sql, run_id="run-file-loads")
    assert [(r["shop_id"], r["year"]) for r in got] == list(expected.index)
    for row in got:
        want = expected.loc[(row["shop_id"], row["year"])]
        assert row["predictions"] == want["n"]
        assert math.isclose(row["rmse"], math.sqrt(want["sse"] / want["n"]), rel_tol=1e-9)
        assert math.isclose(row["baseline_rmse"], math.sqrt(want["base_sse"] / want["n"]), rel_tol=1e-9)

    with open(os.path.join(SQL_DIR, "rmse_by_year.sql")) as handle:
        sql = handle.read().replace("dataset.predictions", f"`{PROJECT}.results.predictions`")
    by_year = {str(r["year"]): r["rmse"] for r in query_rows(client, sql, run_id="run-file-loads")}
    summary_rmse = file_loads_run["summary"]["rmse_by_test_period"]
    assert by_year.keys() == summary_rmse.keys()
    for year, rmse in by_year.items():
        assert math.isclose(rmse, summary_rmse[year], rel_tol=1e-9)


def run_count(client, table: str, run_id: str) -> int:
    return query_rows(client, f"SELECT COUNT(*) AS n FROM `{table}` WHERE run_id = @run_id", run_id=run_id)[0]["n"]


def test_streaming_inserts_and_the_rerun_rule(bq, client, tmp_path, write_parquet):
    client.create_dataset("streamed", exists_ok=True)
    data = seed_frame()
    data = data[data["shop_id"].isin(["S000", "S002", "S003"])]
    source = write_parquet(data)
    args = [f"--input={source}", "--run_id=run-streamed", *bq_args(tmp_path, "streamed")]
    summary = run_pipeline(tmp_path / "out", *args, "--bq_write_method=STREAMING_INSERTS")
    predictions_table = f"{PROJECT}.streamed.predictions"
    streamed = by_row(table_frame(client, predictions_table))
    files = by_row(read_output(str(tmp_path / "out"), "predictions"))
    assert len(streamed) == summary["predictions"] == len(files) > 0
    pd.testing.assert_frame_equal(streamed[files.columns], files, check_dtype=False)
    ledger = table_frame(client, f"{PROJECT}.streamed.ledger")
    assert len(ledger) == summary["groups_planned"] and set(ledger["status"]) == {"trained", "skipped"}
    table = client.get_table(predictions_table, timeout=WAIT)
    assert table.time_partitioning.field == "date" and table.clustering_fields == ["shop_id", "run_id"]

    # Another run's rows in the same table must survive whatever happens to this run's rows.
    other = streamed.head(3).assign(run_id="run-other", date=lambda f: f["date"].astype(str))
    assert client.insert_rows_json(predictions_table, other.to_dict(orient="records"), timeout=WAIT) == []

    # The same launch again: refused before any work (default --if_run_exists=fail).
    with pytest.raises(ParameterError) as refused:
        run_pipeline(tmp_path / "again", *args, "--bq_write_method=FILE_LOADS")
    assert refused.value.name == "run_id" and "--if_run_exists=replace" in str(refused.value)
    assert not (tmp_path / "again").exists()
    assert run_count(client, predictions_table, "run-streamed") == len(files)

    # ... or that run's rows are replaced, not duplicated.
    again = run_pipeline(tmp_path / "again", *args, "--bq_write_method=FILE_LOADS", "--if_run_exists=replace")
    assert run_count(client, predictions_table, "run-streamed") == again["predictions"] == len(files)
    assert run_count(client, f"{PROJECT}.streamed.ledger", "run-streamed") == again["groups_planned"]
    assert run_count(client, predictions_table, "run-other") == 3


def prepare_error(argv: list[str]) -> ParameterError:
    params, beam_args = parse_args(argv)
    with pytest.raises(ParameterError) as error:
        bigquery.prepare(params, pipeline_options([f"--project={PROJECT}", *beam_args]), "bigquery")
    return error.value


def test_source_column_types_are_checked_before_any_work(bq, client):
    odd = f"{PROJECT}.sales.odd_types"
    client.create_table(bq_client.Table(odd, schema=[
        *SEED_SCHEMA[:4], bq_client.SchemaField("attr1", "RECORD", fields=[bq_client.SchemaField("x", "INTEGER")]),
        bq_client.SchemaField("attr2", "BYTES"), bq_client.SchemaField("attr3", "STRING", mode="REPEATED"),
        bq_client.SchemaField("when", "TIMESTAMP"), bq_client.SchemaField("amount", "NUMERIC")]), exists_ok=True)
    error = prepare_error([f"--input_table={odd}"])
    assert error.name == "features" and "'attr1' is RECORD" in str(error)
    error = prepare_error([f"--input_table={odd}", "--features=amount,attr2"])
    assert error.name == "features" and "'attr2' is BYTES" in str(error)
    error = prepare_error([f"--input_table={odd}", "--features=attr3"])
    assert "REPEATED STRING" in str(error)
    error = prepare_error([f"--input_table={odd}", "--features=amount", "--target=attr2"])
    assert error.name == "target"
    error = prepare_error([f"--input_table={odd}", "--features=nope"])
    assert error.name == "features" and "missing ['nope']" in str(error)
    # TIMESTAMP dates and NUMERIC features are usable.
    params, beam_args = parse_args([f"--input_table={odd}", "--features=amount", "--date_column=when"])
    bigquery.prepare(params, pipeline_options([f"--project={PROJECT}"]), "bigquery")
    # A query's columns come from a dry run of the query.
    params, _ = parse_args(["--source=bigquery", "--query=SELECT year, date, shop_id, sales, attr1, attr2, attr3 "
                            "FROM sales.daily WHERE year >= 2015"])
    bigquery.prepare(params, pipeline_options([f"--project={PROJECT}"]), "bigquery")
    error = prepare_error(["--source=bigquery", "--query=SELECT year, date, shop_id, sales FROM sales.daily"])
    assert error.name == "features"


def test_target_tables_are_checked_before_any_work(bq, client):
    client.create_dataset("checks", exists_ok=True)
    # The article's schema: sales (the actual) as INTEGER breaks on real, fractional targets.
    client.create_table(bq_client.Table(f"{PROJECT}.checks.article", schema=[
        bq_client.SchemaField("shop_id", "STRING"), bq_client.SchemaField("date", "STRING"),
        bq_client.SchemaField("predict", "FLOAT"), bq_client.SchemaField("sales", "INTEGER")]), exists_ok=True)
    error = prepare_error([f"--input_table={SEED_TABLE}", f"--output_table={PROJECT}:checks.article"])
    assert error.name == "output_table" and "'date' is STRING there, the pipeline writes DATE" in str(error)

    params = parse_args(["--run_id=x"])[0]
    metrics = f"{PROJECT}.checks.metrics"
    client.create_table(bq_client.Table(metrics, schema=[
        bq_client.SchemaField(f["name"], f["type"]) for f in bigquery.table_schema(
            sinks.output_schemas(params)["metrics"])["fields"]]), exists_ok=True)
    row = {f.name: None for f in sinks.output_schemas(params)["metrics"]} | {"shop_id": "S000", "run_id": "x"}
    assert client.insert_rows_json(metrics, [row], timeout=WAIT) == []
    error = prepare_error([f"--input_table={SEED_TABLE}", f"--metrics_table={metrics}", "--write_disposition=WRITE_EMPTY"])
    assert error.name == "write_disposition" and "holds 1 rows" in str(error)
    error = prepare_error([f"--input_table={SEED_TABLE}", f"--metrics_table={metrics}", "--run_id=x"])
    assert error.name == "run_id"
    params, _ = parse_args([f"--input_table={SEED_TABLE}", f"--metrics_table={metrics}",
                            "--write_disposition=WRITE_TRUNCATE", "--run_id=x"])
    bigquery.prepare(params, pipeline_options([f"--project={PROJECT}"]), "bigquery")  # truncation: no run rule
    assert run_count(client, metrics, "x") == 1


def test_a_source_without_period_column_is_checked_with_period_from_the_date(bq, client):
    """--period derives the period from the date: the query needs no period column (issue 21 §1)."""
    query = "--query=SELECT date, shop_id, sales, attr1, attr2, attr3 FROM sales.daily"
    error = prepare_error(["--source=bigquery", query])
    assert error.name == "time_column"
    params, _ = parse_args(["--source=bigquery", query, "--period=month"])
    assert params.time_column == "month" and "month" not in params.columns
    bigquery.prepare(params, pipeline_options([f"--project={PROJECT}"]), "bigquery")
