"""Sinks: each output in its own folder under --output, as Parquet (default) or CSV.

The output schemas are declared here once; the BigQuery sink derives its table
schemas from them. Sinks write under <output>/_staging/<run_id>/ and
pipeline.io.publishing.publish copies the outputs to their final names once all are written,
so a crash leaves no half-written file and no mix of two runs under a final name.
"""

from __future__ import annotations

import os
import re

import apache_beam as beam
import pandas as pd
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipeline.io.outputs import labels
from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.utils import packing  # noqa: F401  (registers the coder of the Arrow tables written)

OUTPUT_NAMES = ("predictions", "metrics", "ledger", "rejected_rows", "search",  # search: with --param_grid
                "selection",  # selection: with several models
                "forecasts")  # forecasts: with --forecast
SUMMARY_FILE = "summary.json"
# Reproducibility and evaluation (lineage, plan-only mode, report)
MANIFEST_FILE, PLAN_SUMMARY_FILE, REPORT_FILE = "manifest.json", "plan.json", "report.html"
PLAN_NAME = "plan"
STAGING = "_staging"
SCALED_METRICS = ("mase", "smape", "wape")  # pipeline.stages.fit.evaluate.scaled_metrics
GCS_BUCKET_RE = r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?$"


def output_schemas(params: PipelineParams) -> dict[str, pa.Schema]:
    key = (params.key_column, pa.string())
    window = [("window_start", pa.int64()), ("window_end", pa.int64())]
    lineage = [("run_id", pa.string()), ("params_hash", pa.string()), ("code_version", pa.string())]
    tail = [("model", pa.string()), *lineage]
    # the hyperparameters used; with --param_grid also the chosen configuration and its validation score
    chosen = [("model_params", pa.string()), ("config_id", pa.int64()), ("validation_rmse", pa.float64())]
    # --interval_levels: the band of each level (pipeline.stages.fit.intervals), on forecasts and predictions
    bounds = [(f"{side}_{level}", pa.float64()) for level in params.interval_levels for side in ("lower", "upper")]
    bounds += [("calibration_residuals", pa.int64())] if params.interval_levels else []
    # --interval_method=model: whether a row's band is its statistical model's own or conformal
    bounds += [("interval_source", pa.string())] if params.interval_levels and params.interval_method == "model" else []
    coverage = [(f"coverage_{level}", pa.float64()) for level in params.interval_levels]
    # --model_dir: each saved model file's SHA-256, checked before it is loaded (pipeline.io.outputs.artifacts)
    artifact = [("artifact_sha256", pa.string())] if params.model_dir else []
    # readable periods next to the integers (pipeline.io.outputs.labels fills them)
    period_label, window_label, train_label, test_label = ((name, pa.string()) for name in (
        labels.PERIOD_LABEL, "window_label", "train_label", "test_label"))
    # MASE, sMAPE, WAPE of the model and of seasonal naive (pipeline.stages.fit.evaluate)
    scaled = [(f"{prefix}{name}", pa.float64()) for prefix in ("", "seasonal_naive_") for name in SCALED_METRICS]
    # --fallback_model: which model produced the row and why it was not the candidate (pipeline.stages.fit.train)
    fallback = [("fitted_model", pa.string()), ("fallback", pa.string())] if params.fallback_model else []
    return {
        "predictions": pa.schema([
            key, (params.date_column, pa.date32()), (params.time_column, pa.int64()), period_label, *window,
            ("predicted", pa.float64()), ("actual", pa.float64()), ("baseline", pa.float64()),
            ("seasonal_naive", pa.float64()), ("mase_scale", pa.float64()), *bounds, *fallback, *tail]),
        "metrics": pa.schema([
            key, *window, window_label, ("test_start", pa.int64()), test_label, ("rows_train", pa.int64()),
            ("rows_test", pa.int64()),
            ("rmse", pa.float64()), ("mae", pa.float64()), ("mape", pa.float64()), ("bias", pa.float64()),
            ("baseline_rmse", pa.float64()), *scaled, ("fit_seconds", pa.float64()),
            ("predict_seconds", pa.float64()), *coverage, *chosen, *fallback, *tail]),
        "ledger": pa.schema([
            key, *window, window_label, ("status", pa.string()), ("reason", pa.string()), ("rows_train", pa.int64()),
            ("rows_test", pa.int64()), ("fit_seconds", pa.float64()), ("predict_seconds", pa.float64()),
            ("error_class", pa.string()), ("error_message", pa.string()), *chosen, *fallback, *artifact, *tail]),
        "rejected_rows": pa.schema([
            ("stage", pa.string()), ("reason", pa.string()), ("field", pa.string()),
            ("row_json", pa.string()), *lineage]),
        "search": pa.schema([
            key, *window, ("validation_start", pa.int64()), ("config_id", pa.int64()), ("model_params", pa.string()),
            ("validation_rmse", pa.float64()), ("chosen", pa.bool_()), ("rows_fit", pa.int64()),
            ("rows_validation", pa.int64()), ("fit_seconds", pa.float64()), ("error_message", pa.string()),
            *tail]),
        "selection": pa.schema([
            key, ("model", pa.string()), ("select_metric", pa.string()), ("score", pa.float64()),
            ("windows_compared", pa.int64()), ("chosen", pa.bool_()), ("select_rule", pa.string()),
            ("chosen_by", pa.string()), *lineage]),
        "forecasts": pa.schema([
            key, (params.date_column, pa.date32()), (params.time_column, pa.int64()), period_label,
            ("predicted", pa.float64()), *bounds, ("train_start", pa.int64()), ("train_end", pa.int64()),
            train_label, ("rows_train", pa.int64()),
            ("model_params", pa.string()), *fallback, *tail]),
        PLAN_NAME: pa.schema([
            key, *window, window_label, ("train_start", pa.int64()), ("train_end", pa.int64()), train_label,
            ("test_start", pa.int64()), ("test_end", pa.int64()), test_label, ("periods_present", pa.int64()),
            ("rows_train", pa.int64()),
            ("rows_test", pa.int64()), ("status", pa.string()), ("reason", pa.string()), *tail]),
    }


def output_path(params: PipelineParams, name: str) -> str:
    return FileSystems.join(params.output, name)


def staging_root(params: PipelineParams) -> str:
    return FileSystems.join(params.output, STAGING, params.run_id)


def staging_path(params: PipelineParams, name: str) -> str:
    """Where this run writes `name` before pipeline.io.publishing.publish moves it under --output."""
    return FileSystems.join(staging_root(params), name)


def check_output_location(output: str) -> None:
    """--output must be a local folder (or a place for one) or gs://bucket[/prefix], without wildcards."""
    if any(c in output for c in "*?[]"):
        raise ParameterError("output", output, "a folder path or gs:// prefix without wildcards (* ? [ ])")
    scheme = FileSystems.get_scheme(output)
    if scheme == "gs":
        if not re.fullmatch(GCS_BUCKET_RE, output):
            raise ParameterError("output", output, "gs://<bucket>[/<prefix>] with a valid bucket name "
                                 "(3-222 lowercase letters, digits, '.', '_' or '-')")
    elif scheme is not None:
        raise ParameterError("output", output, "a local folder or a gs:// prefix")
    elif os.path.exists(output) and not os.path.isdir(output):
        raise ParameterError("output", output, "a folder; this path is an existing file")


ROWS_PER_TABLE = 100_000  # rows per Arrow table written (a Parquet row group): bounded memory, few files


def to_table(frame: pd.DataFrame, schema: pa.Schema, labeller: labels.Labeller | None = None) -> pa.Table:
    if labeller is not None:
        frame = labeller.fill(frame, schema.names)
    columns = {}
    for field in schema:
        values = frame[field.name] if field.name in frame else pd.Series([None] * len(frame))
        if pa.types.is_date32(field.type):  # days from datetime64 in numpy, not a date object per row
            values = pd.to_datetime(values).to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
        columns[field.name] = pa.array(values, type=field.type, from_pandas=True)
    return pa.table(columns, schema=schema)


def _concat(items) -> pd.DataFrame:
    """One DataFrame from a batch of DataFrames or of row dicts."""
    if all(isinstance(item, dict) for item in items):
        return pd.DataFrame(list(items))
    return pd.concat(items, ignore_index=True) if len(items) > 1 else items[0]


class _ArrowTablesFn(beam.DoFn):
    """DataFrames or row dicts -> Arrow tables in `schema` of about ROWS_PER_TABLE rows, with
    `constants` (the lineage columns) set once per table. Elements are the global window's (the
    pipeline cuts its sliding windows itself), so what a bundle leaves is emitted there."""

    def __init__(self, schema: pa.Schema, constants: dict, rows_per_table: int, labeller=None):
        self._schema, self._constants, self._rows_per_table = schema, constants, rows_per_table
        self._labeller = labeller

    def start_bundle(self):
        self._items, self._rows = [], 0

    def process(self, element):
        self._items.append(element)
        self._rows += len(element) if isinstance(element, pd.DataFrame) else 1
        if self._rows >= self._rows_per_table:
            yield self._table()

    def finish_bundle(self):
        if self._items:
            yield beam.transforms.window.GlobalWindows.windowed_value(self._table())

    def _table(self) -> pa.Table:
        frame = _concat(self._items).assign(**self._constants)
        self._items, self._rows = [], 0
        return to_table(frame, self._schema, self._labeller)


class ToArrowTables(beam.PTransform):
    """An output's DataFrames or row dicts -> Arrow tables of its schema (see _ArrowTablesFn);
    the file and the BigQuery sinks both write from these."""

    def __init__(self, schema: pa.Schema, constants: dict | None = None, rows_per_table: int = ROWS_PER_TABLE,
                 labeller: labels.Labeller | None = None):
        super().__init__()
        self._schema, self._constants, self._rows_per_table = schema, constants or {}, rows_per_table
        self._labeller = labeller

    def expand(self, elements):
        if not isinstance(elements.windowing.windowfn, beam.transforms.window.GlobalWindows):
            raise ValueError(f"{self.label}: outputs are written from the global window")
        return elements | "ToArrow" >> beam.ParDo(
            _ArrowTablesFn(self._schema, self._constants, self._rows_per_table, self._labeller)
        ).with_output_types(pa.Table)


class WriteFrames(beam.PTransform):
    """Writes a PCollection of DataFrames (or row dicts) to <output>/<name>/part-*, or a tuple of such
    PCollections, the parts of one output (the fits' two paths, pipeline.stages.prepare.fanout), as Arrow tables
    of about ROWS_PER_TABLE rows (ToArrowTables) with `constants` (the lineage columns) on every row.

    Each part is batched and converted where it is produced, and only the converted tables (or CSV
    texts) are flattened into the one write: Beam's local runner materialises a flatten, and a few large
    tables cost it far less than a DataFrame per key x window. Returns the written file names."""

    def __init__(self, params: PipelineParams, name: str, schema: pa.Schema, constants: dict | None = None):
        super().__init__()
        self._params, self._name, self._schema, self._constants = params, name, schema, constants or {}

    def expand(self, frames):
        schema, prefix = self._schema, FileSystems.join(staging_path(self._params, self._name), "part")
        csv = self._params.output_format == "csv"
        parts = frames if isinstance(frames, tuple) else (frames,)
        converted = [self._convert(part, f"_{i}" if i else "", csv) for i, part in enumerate(parts)]
        batches = converted[0] if len(converted) == 1 else tuple(converted) | "AllParts" >> beam.Flatten()
        if csv:
            return batches | "Write" >> beam.io.WriteToText(prefix, file_name_suffix=".csv",
                                                            header=",".join(schema.names))
        return batches | "Write" >> beam.io.WriteToParquetBatched(prefix, schema=schema,
                                                                   file_name_suffix=".parquet")

    def _convert(self, frames, label: str, csv: bool):
        """`frames` as Arrow tables of the output's schema (ToArrowTables), or as CSV text without the header."""
        tables = frames | f"Batch{label}" >> ToArrowTables(self._schema, self._constants,
                                                           labeller=labels.Labeller.from_params(self._params))
        if csv:
            return tables | f"ToCsv{label}" >> beam.Map(lambda t: t.to_pandas().to_csv(
                index=False, header=False, lineterminator="\n").rstrip("\n"))
        return tables


class WriteOutputs(beam.PTransform):
    """Writes predictions, metrics, ledger and rejected rows (or the plan), each in its own staged
    folder, with the run's lineage columns on every row.

    An output may be a tuple of PCollections, its parts (WriteFrames). Returns, per output, the
    PCollection of its finalized file names."""

    def __init__(self, params: PipelineParams, lineage_columns: dict):
        super().__init__()
        self._params, self._columns = params, lineage_columns

    def expand(self, outputs: dict):
        schemas, columns = output_schemas(self._params), self._columns
        return {name: outputs[name] | f"Write_{name}" >> WriteFrames(self._params, name, schemas[name], columns)
                for name in outputs}
