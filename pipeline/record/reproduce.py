"""Re-running one key x window of a finished run from its manifest, bit for bit.

    python -m pipeline.record.reproduce MANIFEST --key S008 --window 2014 [--run --output DIR]

A local run (DuckDB, files) is re-run on its own query restricted to the key and the window, in DuckDB.
A BigQuery run's rows are fetched first with a parameterised standard-SQL query (@key, @first, @last:
BigQuery query parameters, so no value is spliced into the SQL whatever its quotes or backslashes)
into a Parquet file (`--rows`), which the pipeline then reads; without --run the query, its parameters
and the command are printed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys

from apache_beam.io.filesystems import FileSystems

from pipeline.io.sources import local_query

LAUNCH_ONLY_PARAMS = frozenset({"query", "input", "source", "output", "run_id", "plan_only", "model_dir",
                                "if_output_exists", "input_table",
                                # a re-run writes to its own --output, never to the run's BigQuery tables
                                "output_table", "metrics_table", "ledger_table", "rejected_table",
                                "selection_table", "forecast_table"})


def _duckdb_text(value: str) -> str:
    """A DuckDB string literal (standard SQL: a quote is doubled; DuckDB reads no backslash escapes)."""
    return "'" + str(value).replace("'", "''") + "'"


def _periods(params: dict, window_start: int) -> tuple[int | None, int]:
    """(first, last) period the re-run reads: the window's, or every one up to its last (first None)
    with lags or rolling means, since those features read the rows before the window."""
    last = int(window_start) + int(params["window_size"]) - 1
    reads_history = bool(params.get("lag_days") or params.get("rolling_mean_days")
                         or params.get("window_mode") == "expanding")  # expanding: trains on every earlier period
    return (None if reads_history else int(window_start)), last


def bigquery_rows_query(manifest_doc: dict, key: str, window_start: int) -> tuple[str, list[tuple[str, str, object]]]:
    """(standard SQL, its query parameters as (name, type, value)) selecting a BigQuery run's rows of one
    key and the periods the re-run needs, from the run's query or input table."""
    params = manifest_doc["parameters"]
    key_column, time_column = params["key_column"], params["time_column"]
    first, last = _periods(params, window_start)
    rows = params.get("query") or f"SELECT * FROM `{str(params['input_table']).replace(':', '.')}`"
    periods = f"{time_column} <= @last" if first is None else f"{time_column} BETWEEN @first AND @last"
    sql = (f"SELECT * FROM ({rows}) AS source "
           f"WHERE TRIM(CAST({key_column} AS STRING)) = @key AND {periods}")
    parameters = [("key", "STRING", str(key)), ("last", "INT64", last)]
    return sql, parameters + ([] if first is None else [("first", "INT64", first)])


def fetch_bigquery_rows(manifest_doc: dict, key: str, window_start: int, path: str, client=None) -> int:
    """Runs bigquery_rows_query with its parameters and writes the rows to `path` (Parquet, local or
    gs://); returns the number of rows."""
    import pyarrow.parquet as pq
    from google.cloud import bigquery as bq

    from pipeline.io.warehouse import bigquery

    sql, parameters = bigquery_rows_query(manifest_doc, key, window_start)
    client = client or bigquery.make_client(None)
    config = bq.QueryJobConfig(query_parameters=[bq.ScalarQueryParameter(*p) for p in parameters],
                               use_legacy_sql=False)
    table = client.query(sql, job_config=config).result().to_arrow(create_bqstorage_client=False)
    with FileSystems.create(path) as handle:
        pq.write_table(table, handle)
    return table.num_rows


def reproduce_argv(manifest_doc: dict, key: str, window_start: int, output: str,
                   bigquery_rows: str | None = None) -> list[str]:
    """Pipeline arguments that re-run one key x window of a finished run, bit for bit.

    The run's query (or its input files, registered in DuckDB as input_files) is restricted to the
    key and the window's periods; with lags or rolling means, to the key and every period up to the
    window's last, since those features read the rows before the window (the re-run then also trains
    the key's earlier windows; the asked one is identical). Every other result parameter is the run's own. Seeds derive from (seed, key,
    window), and the window's rows are the same, so the predictions are the same. The restricted
    query runs in DuckDB. A BigQuery run (is_bigquery) is re-run on `bigquery_rows`, the Parquet file
    fetch_bigquery_rows wrote.
    """
    params = manifest_doc["parameters"]
    if is_bigquery(manifest_doc):
        if not bigquery_rows:
            raise ValueError("a BigQuery run is re-run on its rows fetched by fetch_bigquery_rows: give their file")
        argv = [f"--input={bigquery_rows}", "--source=file", f"--output={output}"]
    else:
        argv = [f"--query={_duckdb_query(params, key, window_start)}", f"--output={output}"]
        if params.get("input"):  # DuckDB reads no file itself: the files are registered as input_files
            argv += [f"--input={params['input']}", "--source=duckdb"]
    for name, value in params.items():
        if name in LAUNCH_ONLY_PARAMS or value is None:
            continue
        if isinstance(value, list):
            value = ",".join(map(str, value))
        elif isinstance(value, dict):
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = str(value).lower()
        argv.append(f"--{name}={value}")
    return argv


def is_bigquery(manifest_doc: dict) -> bool:
    params = manifest_doc["parameters"]
    return params.get("source") == "bigquery" or bool(params.get("input_table"))


def _duckdb_query(params: dict, key: str, window_start: int) -> str:
    """The run's DuckDB query (a file run's: over its files, registered as input_files), restricted."""
    # A file run's rows are the files themselves; a --source=duckdb run's are its query over them.
    read_files = bool(params.get("input")) and params.get("source") != "duckdb"
    source_sql = f"SELECT * FROM {local_query.INPUT_TABLE}" if read_files else params["query"]
    first, last = _periods(params, window_start)
    periods = f"<= {last}" if first is None else f"BETWEEN {first} AND {last}"
    return (f"SELECT * FROM ({source_sql}) AS source "
            f"WHERE TRIM(CAST({params['key_column']} AS VARCHAR)) = {_duckdb_text(key)} "
            f"AND {params['time_column']} {periods}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.record.reproduce",
                                     description="Re-run one key x window of a finished run from its manifest.")
    parser.add_argument("manifest", help="path to a run's manifest.json (local or gs://)")
    parser.add_argument("--key", required=True)
    parser.add_argument("--window", required=True, type=int, help="window_start")
    parser.add_argument("--output", default="output/reproduce")
    parser.add_argument("--run", action="store_true", help="run it now instead of printing the command")
    parser.add_argument("--rows", help="a BigQuery run: the Parquet file its key's rows are fetched to "
                                       "(default: <output>-rows.parquet)")
    args = parser.parse_args(argv)
    with FileSystems.open(args.manifest) as handle:
        document = json.loads(handle.read())
    rows_file = None
    if is_bigquery(document):
        rows_file = args.rows or args.output.rstrip("/") + "-rows.parquet"
        sql, parameters = bigquery_rows_query(document, args.key, args.window)
        print(f"# rows: BigQuery standard SQL with query parameters, fetched to {rows_file}"
              + ("" if args.run else " by --run"))
        print("#   " + sql)
        print("#   " + ", ".join(f"@{name} {kind} = {value!r}" for name, kind, value in parameters))
        if args.run:
            print(f"# {fetch_bigquery_rows(document, args.key, args.window, rows_file)} rows fetched")
    pipeline_argv = reproduce_argv(document, args.key, args.window, args.output, rows_file)
    print(f"# code: git checkout {document['git_commit']}  (image: {document.get('image') or 'none'})")
    print("python -m pipeline " + " ".join(shlex.quote(a) for a in pipeline_argv), flush=True)
    if args.run:  # the pipeline's own command line, in a process of its own
        return subprocess.run([sys.executable, "-m", "pipeline", *pipeline_argv], check=False).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
