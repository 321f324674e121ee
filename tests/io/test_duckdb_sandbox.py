"""The local --query sandbox: DuckDB reaches only the tables the pipeline registers (dataset.table,
and input_files with --source=duckdb --input), at launch and on the workers; a query that reaches
anything else (files, databases, extensions, Python variables) is refused before any work."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline import run as pipeline_run
from pipeline.io.sources import local_query, sample_data, source
from pipeline.params.declare import ParameterError
from tests.helpers.pipeline_runs import make_rows, run_pipeline, sorted_predictions

COLUMNS = "year, date, shop_id, sales, attr1, attr2, attr3"


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.csv"
    path.write_text("year,date,shop_id,sales,attr1,attr2,attr3\n2001,2001-01-01,S,1,1,1,1\n")
    return str(path)


@pytest.mark.parametrize("query", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT {columns} FROM read_csv('{secret}')",
    "SELECT {columns} FROM '{secret}'",
    "SELECT {columns} FROM read_text('/etc/hostname'), dataset.table",
    "SELECT {columns} FROM glob('/etc/*'), dataset.table",
    "SELECT {columns} FROM dataset.table WHERE shop_id IN (SELECT column0 FROM read_csv('{secret}'))",
])
def test_a_query_reaching_a_file_is_refused_before_any_work(tmp_path, secret, query):
    query = query.format(columns=COLUMNS, secret=secret)
    with pytest.raises(ParameterError) as refused:
        pipeline_run.prepare([f"--query={query}", f"--output={tmp_path / 'out'}", "--model=ridge"])
    assert refused.value.name == "query"
    assert "tables the pipeline registers" in str(refused.value) or "does not exist" in str(refused.value)
    assert not (tmp_path / "out").exists()  # refused before any work


def test_the_connection_cannot_be_unlocked_nor_reach_python_variables(secret):
    connection = local_query.duckdb_connection()
    hidden = pd.DataFrame({"a": [1]})  # noqa: F841 (a local a replacement scan could find)
    try:
        for statement in ("SET enable_external_access = true", "SET lock_configuration = false",
                          f"ATTACH '{secret}.db'", f"COPY (SELECT 1) TO '{secret}.out'", "INSTALL httpfs",
                          "LOAD httpfs", "SELECT * FROM hidden"):
            with pytest.raises(Exception) as refused:
                connection.execute(statement)
            assert "Permission" in str(refused.value) or "locked" in str(refused.value) or (
                "does not exist" in str(refused.value)), statement
        # The registered table is still there.
        assert connection.execute('SELECT COUNT(*) FROM dataset."table"').fetchone()[0] == len(sample_data.generate())
    finally:
        connection.close()


def test_workers_run_the_query_in_the_same_sandbox(secret):
    """The worker's DoFn builds its own connection: the same refusal, whatever the launcher checked."""
    fn = source._RunDuckDBQuery(f"SELECT {COLUMNS} FROM read_csv('{secret}')", tuple(COLUMNS.split(", ")))
    with pytest.raises(Exception, match="Permission Error"):
        list(fn.process(None))


def test_the_article_query_and_input_files_registered_in_duckdb_still_work(tmp_path):
    """--input read by the pipeline's own reader (no DuckDB file access), or registered for a query."""
    data = make_rows({"A": [2001, 2002, 2003], "B": [2001, 2002, 2003]}, days=6)
    path = tmp_path / "rows.parquet"
    data.to_parquet(path, index=False)
    from_file = run_pipeline(tmp_path / "file", f"--input={path}", "--model=ridge")
    from_query = run_pipeline(tmp_path / "query", f"--input={path}", "--source=duckdb", "--model=ridge",
                              f"--query=SELECT {COLUMNS} FROM {local_query.INPUT_TABLE} WHERE shop_id = 'A'")
    assert from_file["source"] == "file" and from_query["source"] == "duckdb"
    assert from_file["rows_read"] == len(data) and from_query["rows_read"] == len(data) // 2
    a = sorted_predictions(tmp_path / "file", lineage=False)
    b = sorted_predictions(tmp_path / "query", lineage=False)
    pd.testing.assert_frame_equal(a[a["shop_id"] == "A"].reset_index(drop=True), b)
    article = pipeline_run.prepare([f"--output={tmp_path / 'article'}", "--model=ridge"])[2]
    assert article == "duckdb"  # the default query over dataset.table passes the checks
