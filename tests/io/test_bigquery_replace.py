"""--if_run_exists=replace deletes nothing at launch, and a run's rows are replaced whole or not at all,
on bqemulator (127.0.0.1).

The launch checks every target table (schemas, the run-id rule), --if_output_exists for the files and
the run id's lease first; only then are missing tables and this job's staging tables created. The job
writes to its staging tables; its publish step swaps them in, in one transaction (pipeline.io.warehouse.bigquery_swap).
A run refused by any check, a job failing before its publish step, or a failing swap statement leaves
every table as it was. Full pipeline runs here use Beam's in-process runner (tests/helpers/bq_emulator.py).

What the emulator cannot check: table expiration (bqemulator accepts `expirationTime` and drops it: the
tests check what the pipeline asks for), and query parameters in a multi-statement query (it does not bind
them: the swap writes the validated run id as a literal). It does run BEGIN/COMMIT TRANSACTION and rolls a
failed transaction back, and runs statements without one in order, keeping what ran before a failure.
"""

from __future__ import annotations

import datetime
import json
import os
import re

import pandas as pd
import pytest
from google.cloud import bigquery as bq_client

from pipeline import run as pipeline_run
from pipeline.io.outputs import sinks
from pipeline.io.publishing import publish
from pipeline.io.warehouse import bigquery, bigquery_swap
from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from pipeline.stages.record.summary import NotPublished, too_many_failures
from tests.helpers.pipeline_runs import IN_PROCESS, read_output
from tests.io.test_bigquery import PROJECT, WAIT, by_row, query_rows, run_count, seed_frame, table_frame

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


def dataset_tables(client, dataset: str) -> set[str]:
    return {t.table_id for t in client.list_tables(dataset, timeout=WAIT)}


def assert_untouched(client, ids: dict, created: bool = False) -> None:
    """RUN's 2 earlier rows and OTHER's 1 in predictions and metrics, as the fixture left them; without
    `created`, no table was created (not even a staging table)."""
    for name in ("predictions", "metrics"):
        assert run_count(client, ids[name], RUN) == 2, name
        assert run_count(client, ids[name], OTHER) == 1, name
    if not created:
        assert dataset_tables(client, ids["predictions"].split(".")[1]) <= {"predictions", "metrics", "ledger"}


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


def launched_publish_id(tmp_path) -> str:
    return json.loads((tmp_path / "out" / "_staging" / RUN / publish.LEASE_FILE).read_text())["publish_id"]


def test_a_launch_deletes_nothing_and_creates_this_jobs_staging_tables(client, tables, tmp_path, write_parquet,
                                                                       monkeypatch):
    dataset, ids = tables
    asked, real_create = [], bigquery_swap.create_table
    monkeypatch.setattr(bigquery_swap, "create_table", lambda client, table_id, schema, layout, expires: (
        asked.append((table_id, expires)), real_create(client, table_id, schema, layout, expires)))
    pipeline_run.prepare(launch_args(tmp_path, write_parquet, dataset))

    assert_untouched(client, ids, created=True)
    token = launched_publish_id(tmp_path)
    staging = {f"{name}__staging_run_replace_{token}" for name in ids}
    assert dataset_tables(client, dataset) == set(ids) | staging  # the targets and this job's staging tables
    for name in staging | {"ledger", "rejected_rows"}:  # created once every check had passed, empty
        assert client.get_table(f"{PROJECT}.{dataset}.{name}", timeout=WAIT).num_rows == 0
    # The emulator drops a table's expiration: what the launch asked for is checked instead.
    assert {table_id.rsplit(".", 1)[1] for table_id, _ in asked} == staging
    for _, expires in asked:
        hours = (expires - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 3600
        assert bigquery_swap.STAGING_HOURS - 1 < hours <= bigquery_swap.STAGING_HOURS


def test_a_launch_refused_by_the_run_ids_lease_changes_no_table(client, tables, tmp_path, write_parquet):
    dataset, ids = tables
    pipeline_run.prepare(launch_args(tmp_path, write_parquet, dataset))
    first = dataset_tables(client, dataset)
    lease = tmp_path / "out" / "_staging" / RUN / publish.LEASE_FILE
    # The first launch's job is still running: its lease names a live process of this host.
    lease.write_text(json.dumps(json.loads(lease.read_text()) | {"pid": os.getppid()}))
    with pytest.raises(ParameterError) as refused:
        pipeline_run.prepare(launch_args(tmp_path, write_parquet, dataset))
    assert refused.value.name == "run_id" and "no live job holds" in str(refused.value)
    assert_untouched(client, ids, created=True)
    assert dataset_tables(client, dataset) == first  # no staging table of its own either


def run_job(tmp_path, write_parquet, dataset: str, *extra: str) -> dict:
    return pipeline_run.run([*launch_args(tmp_path, write_parquet, dataset, *extra), *IN_PROCESS])


def test_a_job_failing_after_it_wrote_keeps_the_previous_rows(client, tables, tmp_path, write_parquet):
    dataset, ids = tables
    # The seed's rejected rows exceed --max_rejected_rate=0: the job fails after writing, before publishing.
    with pytest.raises(Exception) as failed:
        run_job(tmp_path, write_parquet, dataset, "--max_rejected_rate=0")
    assert isinstance(too_many_failures(failed.value), NotPublished)
    assert "BigQuery tables keep their rows" in str(failed.value)
    assert_untouched(client, ids, created=True)
    for name in ("ledger", "rejected_rows"):
        assert run_count(client, ids[name], RUN) == 0, name
    staged = {t for t in dataset_tables(client, dataset) if bigquery_swap.STAGING_MARK in t}
    assert len(staged) == 4  # left to their expiration, with the staged files under _staging/
    assert not (tmp_path / "out" / sinks.SUMMARY_FILE).exists()


@pytest.fixture
def before_swap(monkeypatch):
    """Calls `hook(staged_outputs)` in the publish step just before the real swap."""
    hooks, real_swap = [], bigquery_swap.StagedOutputs.swap_in

    def swap_in(self, client=None):
        for hook in hooks:
            hook(self)
        return real_swap(self, client)

    monkeypatch.setattr(bigquery_swap.StagedOutputs, "swap_in", swap_in)
    return hooks.append


def test_a_replace_leaves_exactly_the_new_rows_and_no_staging_table(client, tables, tmp_path, write_parquet,
                                                                    before_swap):
    dataset, ids = tables
    seen = {}
    before_swap(lambda staged: seen.update(
        {table.output: (run_count(client, table.target, RUN), run_count(client, table.staging, RUN))
         for table in staged.tables}))
    summary = run_job(tmp_path, write_parquet, dataset)

    out = str(tmp_path / "out")
    files = {name: read_output(out, name) for name in ids}
    # Until the swap, the tables held the earlier rows and the staging tables this run's.
    assert seen == {"predictions": (2, len(files["predictions"])), "metrics": (2, len(files["metrics"])),
                    "ledger": (0, len(files["ledger"])), "rejected_rows": (0, len(files["rejected_rows"]))}
    assert len(files["predictions"]) == summary["predictions"] > 0
    for name in ids:
        assert run_count(client, ids[name], RUN) == len(files[name]) > 0, name
    frame = table_frame(client, ids["predictions"])
    written = by_row(frame[frame["run_id"] == RUN])
    pd.testing.assert_frame_equal(written[files["predictions"].columns], by_row(files["predictions"]),
                                  check_dtype=False)
    for name in ("predictions", "metrics"):
        assert run_count(client, ids[name], OTHER) == 1, name
    assert dataset_tables(client, dataset) == set(ids)  # the staging tables are gone


def test_a_failing_swap_statement_leaves_every_table_as_it_was(client, tables, tmp_path, write_parquet,
                                                              before_swap):
    dataset, ids = tables
    # The metrics staging table is gone when the swap runs (as if it had expired). In BigQuery the
    # predictions' statements run before the failing one and are rolled back with the transaction; the
    # emulator may refuse the script before running any (the test below fails a statement as it runs).
    before_swap(lambda staged: client.delete_table(
        next(t.staging for t in staged.tables if t.output == "metrics"), timeout=WAIT))
    with pytest.raises(Exception, match="metrics__staging_run_replace"):
        run_job(tmp_path, write_parquet, dataset)
    assert_untouched(client, ids, created=True)
    for name in ("ledger", "rejected_rows"):
        assert run_count(client, ids[name], RUN) == 0, name
    assert not (tmp_path / "out" / sinks.SUMMARY_FILE).exists()  # the files were not published either


def swap_tables(client, dataset: str, bad_value=None) -> bigquery_swap.StagedOutputs:
    """Two tables `a` and `b` (RUN: 2 rows, OTHER: 1) and their staging tables (RUN: 3 new rows); with
    `bad_value`, b's staging table holds it as a STRING where b holds FLOAT: its INSERT fails."""
    client.create_dataset(dataset, exists_ok=True)
    staged = []
    for name in ("a", "b"):
        target, staging = f"{PROJECT}.{dataset}.{name}", f"{PROJECT}.{dataset}.{name}__staging"
        value_type = "STRING" if bad_value and name == "b" else "FLOAT"
        for table, kind in ((target, "FLOAT"), (staging, value_type)):
            client.create_table(bq_client.Table(table, schema=[
                bq_client.SchemaField("run_id", "STRING"), bq_client.SchemaField("value", kind)]), exists_ok=True)
        rows = [{"run_id": RUN, "value": 1.0}] * 2 + [{"run_id": OTHER, "value": 1.0}]
        assert client.insert_rows_json(target, rows, timeout=WAIT) == []
        new = [{"run_id": RUN, "value": bad_value if value_type == "STRING" else 2.0}] * 3
        assert client.insert_rows_json(staging, new, timeout=WAIT) == []
        staged.append(bigquery_swap.StagedTable(name, target, staging, ("run_id", "value")))
    return bigquery_swap.StagedOutputs(PROJECT, RUN, False, tuple(staged))


def values(client, table: str) -> list[tuple]:
    return sorted((r["run_id"], r["value"]) for r in query_rows(client, f"SELECT * FROM `{table}`"))


def test_the_swap_is_one_transaction_over_every_table(client):
    staged = swap_tables(client, "swap_ok")
    staged.swap_in(client)
    staged.swap_in(client)  # a retried publish step: the same result
    for table in staged.tables:
        assert values(client, table.target) == [(OTHER, 1.0)] + [(RUN, 2.0)] * 3

    staged = swap_tables(client, "swap_fails", bad_value="not a number")
    with pytest.raises(Exception, match="not a number"):
        staged.swap_in(client)
    for table in staged.tables:  # a's DELETE and INSERT ran before b's INSERT failed: rolled back
        assert values(client, table.target) == [(OTHER, 1.0)] + [(RUN, 1.0)] * 2
    # Control: the same statements without BEGIN/COMMIT keep what ran before the failure on the emulator,
    # so the assertion above is the transaction's doing.
    script = staged.script()
    assert script.startswith("BEGIN TRANSACTION;\n") and script.endswith("\nCOMMIT TRANSACTION;")
    with pytest.raises(Exception, match="not a number"):
        client.query(script.removeprefix("BEGIN TRANSACTION;").removesuffix("COMMIT TRANSACTION;"),
                     timeout=WAIT).result(timeout=WAIT)
    assert values(client, staged.tables[0].target) == [(OTHER, 1.0)] + [(RUN, 2.0)] * 3


def test_with_write_truncate_the_swap_leaves_only_the_staged_rows(client):
    staged = swap_tables(client, "swap_truncate")
    staged = bigquery_swap.StagedOutputs(PROJECT, RUN, True, staged.tables)
    staged.swap_in(client)
    for table in staged.tables:
        assert values(client, table.target) == [(RUN, 2.0)] * 3
    staged.drop(client)
    staged.drop(client)  # already gone: nothing else is touched
    assert {t.table_id for t in client.list_tables("swap_truncate", timeout=WAIT)} == {"a", "b"}


@pytest.mark.parametrize("run_id", ["run.2026-06", "a" * 63])
def test_staging_names_are_valid_table_names_and_ours(run_id):
    target = f"p.d.{'t' * 1024}"
    name = bigquery_swap.staging_name(target, run_id, "0123abcd")
    dataset, _, table = name.rpartition(".")
    assert dataset == "p.d" and len(table) <= 1024 and table.endswith("_0123abcd")
    assert re.fullmatch(r"[A-Za-z0-9_]+", table) and bigquery_swap.STAGING_MARK in table
    assert bigquery_swap.staging_name("d.predictions", run_id, "0123abcd") == (
        f"d.predictions__staging_{run_id.replace('.', '_').replace('-', '_')}_0123abcd")
