"""A BigQuery run's key x window re-run: its rows are fetched with BigQuery query parameters, never
by splicing the key into the SQL (BigQuery rejects quotes doubled the DuckDB way), on the BigQuery
emulator (issue 23 §7)."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from google.cloud import bigquery as bq_client

from pipeline.record import reproduce
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline

pytestmark = pytest.mark.timeout(240)

TABLE = "test-project.repro.quoted"
KEYS = ("O'Brien", "back\\slash'", "plain")
SCHEMA = [bq_client.SchemaField("year", "INTEGER"), bq_client.SchemaField("date", "DATE"),
          bq_client.SchemaField("shop_id", "STRING"), bq_client.SchemaField("sales", "FLOAT"),
          bq_client.SchemaField("attr1", "FLOAT"), bq_client.SchemaField("attr2", "FLOAT"),
          bq_client.SchemaField("attr3", "FLOAT")]


def manifest(**extra) -> dict:
    return {"git_commit": "x", "parameters": {
        "key_column": "shop_id", "time_column": "year", "window_size": 3, "test_periods": 1, "source": "bigquery",
        "query": f"SELECT * FROM `{TABLE}`", "lag_days": [], "rolling_mean_days": [], "model": "ridge",
        "output_table": "p:d.predictions", **extra}}


@pytest.fixture(scope="module")
def client(bq_emulator):
    client = bq_emulator.client()
    client.create_dataset("repro", exists_ok=True)
    frame = make_rows({key: [2001, 2002, 2003, 2004] for key in KEYS}, days=12, seed=4)
    records = frame.assign(date=frame["date"].astype(str)).to_json(orient="records", lines=True)
    client.create_table(bq_client.Table(TABLE, schema=SCHEMA), exists_ok=True)
    client.load_table_from_file(io.BytesIO(records.encode()), TABLE, size=None, rewind=True,
                                job_config=bq_client.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON",
                                                                   schema=SCHEMA)).result(timeout=60)
    return client


def test_the_rows_query_takes_the_key_as_a_parameter():
    sql, parameters = reproduce.bigquery_rows_query(manifest(), "O'Brien", 2001)
    assert "O'Brien" not in sql and "''" not in sql
    assert "= @key" in sql and "BETWEEN @first AND @last" in sql
    assert sorted(parameters) == [("first", "INT64", 2001), ("key", "STRING", "O'Brien"), ("last", "INT64", 2003)]
    sql, parameters = reproduce.bigquery_rows_query(manifest(lag_days=[7], query=None, input_table="p:d.t"), "k", 2002)
    assert "FROM `p.d.t`" in sql and "year <= @last" in sql and ("last", "INT64", 2004) in parameters


@pytest.mark.parametrize("key", KEYS[:2])
def test_quoted_keys_fetch_exactly_their_rows_and_re_run(client, key, tmp_path):
    rows_file = str(tmp_path / "rows.parquet")
    assert reproduce.fetch_bigquery_rows(manifest(), key, 2001, rows_file, client=client) == 3 * 12
    rows = pd.read_parquet(rows_file)
    assert set(rows["shop_id"]) == {key} and sorted(set(rows["year"])) == [2001, 2002, 2003]
    argv = reproduce.reproduce_argv(manifest(), key, 2001, str(tmp_path / "out"), rows_file)
    assert f"--input={rows_file}" in argv and not [a for a in argv if a.startswith(("--query", "--output_table"))]
    summary = run_pipeline(tmp_path / "out", *(a for a in argv if not a.startswith("--output=")))
    assert summary["groups_trained"] == 1
    assert set(read_output(str(tmp_path / "out"), "predictions")["shop_id"]) == {key}
