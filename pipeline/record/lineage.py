"""Lineage: what produced each output row, and the run manifest.

Every output row carries three lineage columns (declared in `sinks.output_schemas`):

- `run_id`: this run;
- `params_hash`: a hash of the parameters that change results (everything except where and how
  outputs are written, see `RESULT_NEUTRAL_PARAMS`), so two runs with the same `params_hash` and
  the same input fingerprint must give the same predictions;
- `code_version`: the package version and git commit (`0.1.0+g1a2b3c4d5e6f`, `.dirty` appended
  when the working tree had uncommitted changes).

The input fingerprint is computed inside the pipeline from the source chunks: the row count and
an order-independent hash of the rows (the sum, modulo 2**64, of one 64-bit hash per row over the
columns the pipeline reads). It does not depend on chunking, worker count or row order, and it
works on Dataflow. It goes to summary.json and, with library versions, the image and the start
and end times, to manifest.json, written by the pipeline after every output is written.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata

import apache_beam as beam
import numpy as np
import pandas as pd

import pipeline
from pipeline.options import PipelineParams

LINEAGE_COLUMNS = ("run_id", "params_hash", "code_version")
# Parameters that decide where and how results are written, never what they are.
RESULT_NEUTRAL_PARAMS = frozenset({"output", "output_format", "if_output_exists", "run_id", "plan_only",
                                   "model_dir",
                                   # BigQuery: how the rows are read, where and how results are written
                                   "bq_read_method", "output_table", "metrics_table", "ledger_table",
                                   "rejected_table", "write_disposition", "bq_write_method", "if_run_exists",
                                   "bq_temp_location"})
LIBRARIES = ("apache-beam", "scikit-learn", "xgboost", "xgboost-cpu", "pandas", "numpy", "pyarrow", "duckdb",
             "joblib", "threadpoolctl", "matplotlib")
GIT_COMMIT_ENV, IMAGE_ENV = "PIPELINE_GIT_COMMIT", "PIPELINE_IMAGE"
HASH_MODULUS = 2 ** 64


def params_hash(params: PipelineParams) -> str:
    """16 hex digits of SHA-256 over the result-relevant parameters, as canonical JSON."""
    relevant = {k: v for k, v in params.as_dict().items() if k not in RESULT_NEUTRAL_PARAMS}
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def git_state() -> tuple[str, bool]:
    """(commit, dirty): from $PIPELINE_GIT_COMMIT (baked into the image), else git, else 'unknown'."""
    baked = os.environ.get(GIT_COMMIT_ENV, "").strip()
    if baked:
        return baked, baked.endswith(".dirty")
    package_dir = os.path.dirname(os.path.abspath(pipeline.__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package_dir, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=package_dir,
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit or "unknown", bool(status.strip())


def code_version(commit: str, dirty: bool) -> str:
    version = pipeline.__version__
    if commit == "unknown":
        return f"{version}+unknown"
    return f"{version}+g{commit.removesuffix('.dirty')[:12]}" + (".dirty" if dirty else "")


def library_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass(frozen=True)
class RunLineage:
    """Run-level facts known at launch; picklable, so every stage carries the same values."""

    run_id: str
    params_hash: str
    code_version: str
    git_commit: str
    git_dirty: bool
    package_version: str
    image: str | None
    runner: str | None
    started_at: str

    @classmethod
    def collect(cls, params: PipelineParams, options=None) -> "RunLineage":
        from apache_beam.options.pipeline_options import StandardOptions, WorkerOptions

        commit, dirty = git_state()
        image = os.environ.get(IMAGE_ENV) or None
        runner = None
        if options is not None:
            image = options.view_as(WorkerOptions).sdk_container_image or image
            runner = options.view_as(StandardOptions).runner
        return cls(run_id=params.run_id, params_hash=params_hash(params),
                   code_version=code_version(commit, dirty), git_commit=commit, git_dirty=dirty,
                   package_version=pipeline.__version__, image=image, runner=runner, started_at=utc_now())

    def columns(self) -> dict:
        return {name: getattr(self, name) for name in LINEAGE_COLUMNS}


def stamp(element, columns: dict):
    """The lineage columns set on one output element (a DataFrame or a row dict)."""
    if isinstance(element, pd.DataFrame):
        return element.assign(**columns)
    return {**element, **columns}


# -- input fingerprint -------------------------------------------------------------------------------

def _canonical(column: pd.Series) -> pd.Series:
    """One representation per value whatever dtype a chunk happened to get (3 == 3.0, None == NaN)."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return column.astype("float64")
    if pd.api.types.is_datetime64_any_dtype(column):
        return pd.Series(column.astype("datetime64[ns]").astype("int64").astype("float64")
                         .where(column.notna()), index=column.index)
    if pd.api.types.infer_dtype(column, skipna=True) in ("string", "date"):
        # Equal values have equal text here, so str() once per distinct value (dates repeat per key).
        codes, uniques = pd.factorize(column)
        text = np.array([str(value) for value in uniques] + [None], dtype=object)
        return pd.Series(text[codes], index=column.index)  # code -1 (missing) picks the None
    missing = column.isna().to_numpy()  # element by element: a list is not missing
    return column.astype(str).astype(object).where(~missing, None)


def row_hashes(chunk: pd.DataFrame) -> np.ndarray:
    canonical = pd.DataFrame({name: _canonical(chunk[name]) for name in chunk.columns})
    return pd.util.hash_pandas_object(canonical, index=False, categorize=False).to_numpy(dtype=np.uint64)


def chunk_fingerprint(chunk: pd.DataFrame) -> dict:
    """Counters for one source chunk; summed over chunks they give the input fingerprint."""
    total = int(row_hashes(chunk).sum(dtype=np.uint64))  # wraps modulo 2**64, as intended
    return {"input_rows": len(chunk), "input_row_hash_sum": total}


def input_fingerprint(totals: dict) -> dict:
    rows = int(totals.get("input_rows", 0))
    row_hash_sum = int(totals.get("input_row_hash_sum", 0)) % HASH_MODULUS
    return {"rows": rows, "row_hash": f"{row_hash_sum:016x}",
            "method": "sum mod 2**64 of pandas.util.hash_pandas_object per row over the columns read"}


class FingerprintInput(beam.PTransform):
    """Source chunks -> per-chunk fingerprint counters (summed with the run's other counters)."""

    def expand(self, chunks):
        return chunks | "HashRows" >> beam.Map(chunk_fingerprint)


# -- manifest ----------------------------------------------------------------------------------------

def manifest(run: RunLineage, params: PipelineParams, summary: dict, written: dict) -> dict:
    """The manifest: everything needed to say what produced the outputs and to reproduce them."""
    return {
        **dataclasses.asdict(run),
        "finished_at": utc_now(),
        "input_fingerprint": summary.get("input_fingerprint"),
        "source": summary.get("source"),
        "libraries": library_versions(),
        "parameters": params.as_dict(),
        "result_neutral_parameters": sorted(RESULT_NEUTRAL_PARAMS),
        "outputs": {name: sorted(os.path.basename(path) for path in paths) for name, paths in written.items()},
        "counts": {k: summary[k] for k in ("rows_read", "rows_used", "rows_rejected", "groups_planned",
                                           "groups_trained", "groups_skipped", "groups_failed", "predictions")
                   if k in summary},
    }


class WriteManifest(beam.PTransform):
    """The run summary (a singleton) -> manifest.json, written once every output is written.

    `written` maps output names to the PCollections of file names their writes return; taking them
    as side inputs makes the manifest wait for every write.
    """

    def __init__(self, run: RunLineage, params: PipelineParams, path: str, written: dict):
        super().__init__()
        self._run, self._params, self._path, self._written = run, params, path, written

    def expand(self, summary):
        from pipeline.summary import write_json

        run, params, path, names = self._run, self._params, self._path, list(self._written)

        def write(summary_doc, *file_lists):
            document = manifest(run, params, summary_doc, dict(zip(names, file_lists)))
            write_json(path, document)
            return document

        return summary | "WriteManifestJson" >> beam.Map(
            write, *(beam.pvalue.AsList(self._written[name]) for name in names))


# -- reproducing one key x window --------------------------------------------------------------------

LAUNCH_ONLY_PARAMS = frozenset({"query", "input", "source", "output", "run_id", "plan_only", "model_dir",
                                "if_output_exists"})


def _sql_text(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def reproduce_argv(manifest_doc: dict, key: str, window_start: int, output: str) -> list[str]:
    """Pipeline arguments that re-run one key x window of a finished run, bit for bit.

    The run's query (or its input files, read through DuckDB) is restricted to the key and the
    window's periods; every other result parameter is the run's own. Seeds derive from (seed, key,
    window), and the window's rows are the same, so the predictions are the same. The restricted
    query runs in DuckDB locally, or in BigQuery with --source=bigquery (STRING instead of VARCHAR).
    """
    params = manifest_doc["parameters"]
    key_column, time_column = params["key_column"], params["time_column"]
    last = int(window_start) + int(params["window_size"]) - 1
    source_sql = params["query"] if not params.get("input") else f"SELECT * FROM {_sql_text(params['input'])}"
    text_type = "STRING" if params.get("source") == "bigquery" else "VARCHAR"
    query = (f"SELECT * FROM ({source_sql}) AS source "
             f"WHERE TRIM(CAST({key_column} AS {text_type})) = {_sql_text(key)} "
             f"AND {time_column} BETWEEN {int(window_start)} AND {last}")
    argv = [f"--query={query}", f"--output={output}"]
    if params.get("source") == "bigquery":
        argv.append("--source=bigquery")
    for name, value in params.items():
        if name in LAUNCH_ONLY_PARAMS or value is None:
            continue
        if isinstance(value, list):
            value = ",".join(value)
        elif isinstance(value, dict):
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = str(value).lower()
        argv.append(f"--{name}={value}")
    return argv


def main(argv: list[str] | None = None) -> int:
    import argparse
    import shlex

    from apache_beam.io.filesystems import FileSystems

    parser = argparse.ArgumentParser(prog="python -m pipeline.lineage",
                                     description="Re-run one key x window of a finished run from its manifest.")
    sub = parser.add_subparsers(dest="command", required=True)
    reproduce = sub.add_parser("reproduce")
    reproduce.add_argument("manifest", help="path to a run's manifest.json (local or gs://)")
    reproduce.add_argument("--key", required=True)
    reproduce.add_argument("--window", required=True, type=int, help="window_start")
    reproduce.add_argument("--output", default="output/reproduce")
    reproduce.add_argument("--run", action="store_true", help="run it now instead of printing the command")
    args = parser.parse_args(argv)
    with FileSystems.open(args.manifest) as handle:
        document = json.loads(handle.read())
    pipeline_argv = reproduce_argv(document, args.key, args.window, args.output)
    print(f"# code: git checkout {document['git_commit']}  (image: {document.get('image') or 'none'})")
    print("python -m pipeline " + " ".join(shlex.quote(a) for a in pipeline_argv))
    if args.run:
        from pipeline import run

        run.run(pipeline_argv)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
