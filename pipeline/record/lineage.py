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
import functools
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata

import apache_beam as beam

import pipeline
from pipeline.io.publishing.results import write_json
from pipeline.params.values import PipelineParams

LINEAGE_COLUMNS = ("run_id", "params_hash", "code_version")
# Parameters that decide where and how results are written, never what they are.
RESULT_NEUTRAL_PARAMS = frozenset({"output", "output_format", "if_output_exists", "run_id", "plan_only",
                                   "model_dir", "quiet", "json", "fan_out",
                                   # BigQuery: how the rows are read, where and how results are written
                                   "bq_read_method", "output_table", "metrics_table", "ledger_table",
                                   "rejected_table", "write_disposition", "bq_write_method", "if_run_exists",
                                   "bq_temp_dataset", "bq_query_priority",
                                   "bq_temp_location", "selection_table", "forecast_table"})
# Parameters added after runs were recorded: hashed only when they differ from their default, so a run
# that does not use them keeps the params_hash it had before they existed.
HASHED_WHEN_SET = frozenset({"select_metric", "forecast", "interval_levels", "interval_method", "period", "frequency",
                             "window_mode", "window_anchor", "n_windows", "period_gaps_ok", "season_length",
                             "lags", "rolling_means", "select", "fallback_model",
                             "max_key_rows", "max_key_bytes", "date_format", "max_rejected_rate"})  # (stages/key_size.py)
LIBRARIES = ("apache-beam", "scikit-learn", "xgboost", "xgboost-cpu", "pandas", "numpy", "pyarrow", "duckdb",
             "joblib", "threadpoolctl", "matplotlib", "statsforecast")
GIT_COMMIT_ENV, IMAGE_ENV = "PIPELINE_GIT_COMMIT", "PIPELINE_IMAGE"


def params_hash(params: PipelineParams) -> str:
    """16 hex digits of SHA-256 over the result-relevant parameters, as canonical JSON."""
    defaults = {f.name: f.default for f in dataclasses.fields(PipelineParams) if f.name in HASHED_WHEN_SET}
    relevant = {k: v for k, v in params.as_dict().items()
                if k not in RESULT_NEUTRAL_PARAMS and not (k in HASHED_WHEN_SET and v == defaults[k])}
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
    return dict(_installed_versions())


@functools.cache
def _installed_versions() -> dict:
    """Read once per process: each lookup parses a package's metadata file, and what is imported stays."""
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
        run, params, path, names = self._run, self._params, self._path, list(self._written)

        def write(summary_doc, *file_lists):
            document = manifest(run, params, summary_doc, dict(zip(names, file_lists)))
            write_json(path, document)
            return document

        return summary | "WriteManifestJson" >> beam.Map(
            write, *(beam.pvalue.AsList(self._written[name]) for name in names))
