"""--if_run_exists=replace deletes nothing until every check has passed, on bqemulator (127.0.0.1).

The launch checks every target table (schemas, the run-id rule) and --if_output_exists for the
files first; only then are missing tables created and the run's earlier rows deleted. A run
refused by any check - a later table's schema, or the files - leaves every table as it was.
"""

from __future__ import annotations

import pytest
from google.cloud import bigquery as bq_client

from pipeline import run as pipeline_run
from pipeline.io import bigquery, sinks
from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from tests.io.test_bigquery import PROJECT, WAIT, run_count, seed_frame

pytestmark = pytest.mark.timeout(240)

RUN = "run-replace"
OTHER = "run-other"


def create_output_table(client, table_id: str, name: str, schema=None) -> None:
    params = parse_args(["--run_id=x"])[0]
    schema = schema or [bq_client.SchemaField(f["name"], f["type"]) for f in bigquery.table_schema(
        sinks.output_schemas(params)[name])["fields"]]
    client.create_table(bq_client.Table(table_id, schema=schema), exists_ok=True)


def insert_run_rows(client, table_id: str, name: str, run_id: str, count: int) -> None:
    params = parse_args(["--run_id=x"])[0]
    row = {f.name: None for f in sinks.output_schemas(params)[name]} | {"shop_id": "S000"}
    assert client.insert_rows_json(table_id, [row | {"run_id": run_id}] * count, timeout=WAIT) == []


@pytest.fixture
def client(bq_emulator, monkeypatch):
    """The official client on the emulator; the pipeline's own client finds it the same way."""
    with bq_emulator.point_beam_at(monkeypatch):
        yield bq_emulator.client()


@pytest.fixture
def tables(client, request):
    """A fresh dataset: predictions and metrics hold 2 rows of RUN and 1 of another run each."""
    dataset = f"replace_{request.node.name[5:][:40]}"
    client.create_dataset(dataset, exists_ok=True)
    ids = {name: f"{PROJECT}.{dataset}.{name}" for name in ("predictions", "metrics", "ledger", "rejected_rows")}
    for name in ("predictions", "metrics"):
        create_output_table(client, ids[name], name)
        insert_run_rows(client, ids[name], name, RUN, 2)
        insert_run_rows(client, ids[name], name, OTHER, 1)
    return dataset, ids


def launch_args(tmp_path, write_parquet, dataset: str, *extra: str) -> list[str]:
    source = write_parquet(seed_frame())
    return [f"--input={source}", f"--output={tmp_path / 'out'}", f"--run_id={RUN}", "--if_run_exists=replace",
            f"--output_table={PROJECT}:{dataset}.predictions", f"--metrics_table={PROJECT}:{dataset}.metrics",
            f"--ledger_table={PROJECT}:{dataset}.ledger", f"--rejected_table={PROJECT}:{dataset}.rejected_rows",
            f"--bq_temp_location={tmp_path / 'bq_temp'}", f"--project={PROJECT}", "--model=ridge", *extra]


def table_exists(client, table_id: str) -> bool:
    return any(t.table_id == table_id.rsplit(".", 1)[1]
               for t in client.list_tables(table_id.rsplit(".", 1)[0], timeout=WAIT))


def assert_untouched(client, ids: dict) -> None:
    for name in ("predictions", "metrics"):
        assert run_count(client, ids[name], RUN) == 2, name
        assert run_count(client, ids[name], OTHER) == 1, name
    assert not table_exists(client, ids["rejected_rows"])  # not even created


def test_a_later_table_refused_deletes_nothing_in_the_earlier_ones(client, tables, tmp_path, write_parquet):
    dataset, ids = tables
    # The ledger table (checked after predictions and metrics) has a schema this output cannot use.
    create_output_table(client, ids["ledger"], "ledger", schema=[bq_client.SchemaField("shop_id", "INTEGER")])
    with pytest.raises(ParameterError) as refused:
        pipeline_run.prepare(launch_args(tmp_path, write_parquet, dataset))
    assert refused.value.name == "ledger_table"
    assert_untouched(client, ids)
    assert not (tmp_path / "out").exists()


def test_files_refused_by_if_output_exists_delete_no_rows(client, tables, tmp_path, write_parquet):
    dataset, ids = tables
    (tmp_path / "out" / "predictions").mkdir(parents=True)
    (tmp_path / "out" / "predictions" / "part-00000.parquet").write_bytes(b"an earlier run")
    leftover = tmp_path / "out" / "_staging" / RUN / "predictions" / "part-00000.parquet"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"an earlier attempt")  # cleared only once every check has passed
    with pytest.raises(ParameterError) as refused:
        pipeline_run.prepare(launch_args(tmp_path, write_parquet, dataset, "--if_output_exists=fail"))

    assert refused.value.name == "output" and "--if_output_exists=replace" in str(refused.value)
    assert_untouched(client, ids)
    assert (tmp_path / "out" / "predictions" / "part-00000.parquet").read_bytes() == b"an earlier run"
    assert leftover.read_bytes() == b"an earlier attempt"


def test_when_every_check_passes_the_run_rows_go_and_the_rest_stays(client, tables, tmp_path, write_parquet):
    dataset, ids = tables
    pipeline_run.prepare(launch_args(tmp_path, write_parquet, dataset))
    for name in ("predictions", "metrics"):
        assert run_count(client, ids[name], RUN) == 0, name
        assert run_count(client, ids[name], OTHER) == 1, name
    for name in ("ledger", "rejected_rows"):  # created once every check had passed
        assert table_exists(client, ids[name])
        assert client.get_table(ids[name], timeout=WAIT).num_rows == 0
