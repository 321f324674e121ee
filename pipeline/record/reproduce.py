"""Re-running one key x window of a finished run from its manifest, bit for bit.

    python -m pipeline.record.reproduce MANIFEST --key S008 --window 2014 [--run --output DIR]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys

from apache_beam.io.filesystems import FileSystems

from pipeline.io import source

LAUNCH_ONLY_PARAMS = frozenset({"query", "input", "source", "output", "run_id", "plan_only", "model_dir",
                                "if_output_exists"})


def _sql_text(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def reproduce_argv(manifest_doc: dict, key: str, window_start: int, output: str) -> list[str]:
    """Pipeline arguments that re-run one key x window of a finished run, bit for bit.

    The run's query (or its input files, registered in DuckDB as input_files) is restricted to the
    key and the window's periods; with lags or rolling means, to the key and every period up to the
    window's last, since those features read the rows before the window (the re-run then also trains
    the key's earlier windows; the asked one is identical). Every other result parameter is the run's own. Seeds derive from (seed, key,
    window), and the window's rows are the same, so the predictions are the same. The restricted
    query runs in DuckDB locally, or in BigQuery with --source=bigquery (STRING instead of VARCHAR).
    """
    params = manifest_doc["parameters"]
    key_column, time_column = params["key_column"], params["time_column"]
    last = int(window_start) + int(params["window_size"]) - 1
    file_input = bool(params.get("input")) and params.get("source") != "bigquery"
    # A file run's rows are the files themselves; a --source=duckdb run's are its query over them.
    read_files = file_input and params.get("source") != "duckdb"
    source_sql = f"SELECT * FROM {source.INPUT_TABLE}" if read_files else params["query"]
    text_type = "STRING" if params.get("source") == "bigquery" else "VARCHAR"
    reads_history = bool(params.get("lag_days") or params.get("rolling_mean_days")
                         or params.get("window_mode") == "expanding")  # expanding: trains on every earlier period
    periods = f"<= {last}" if reads_history else f"BETWEEN {int(window_start)} AND {last}"
    query = (f"SELECT * FROM ({source_sql}) AS source "
             f"WHERE TRIM(CAST({key_column} AS {text_type})) = {_sql_text(key)} "
             f"AND {time_column} {periods}")
    argv = [f"--query={query}", f"--output={output}"]
    if params.get("source") == "bigquery":
        argv.append("--source=bigquery")
    elif file_input:  # DuckDB reads no file itself: the files are registered as input_files
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.record.reproduce",
                                     description="Re-run one key x window of a finished run from its manifest.")
    parser.add_argument("manifest", help="path to a run's manifest.json (local or gs://)")
    parser.add_argument("--key", required=True)
    parser.add_argument("--window", required=True, type=int, help="window_start")
    parser.add_argument("--output", default="output/reproduce")
    parser.add_argument("--run", action="store_true", help="run it now instead of printing the command")
    args = parser.parse_args(argv)
    with FileSystems.open(args.manifest) as handle:
        document = json.loads(handle.read())
    pipeline_argv = reproduce_argv(document, args.key, args.window, args.output)
    print(f"# code: git checkout {document['git_commit']}  (image: {document.get('image') or 'none'})")
    print("python -m pipeline " + " ".join(shlex.quote(a) for a in pipeline_argv), flush=True)
    if args.run:  # the pipeline's own command line, in a process of its own
        return subprocess.run([sys.executable, "-m", "pipeline", *pipeline_argv], check=False).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
