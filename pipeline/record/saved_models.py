"""Re-predicting one key x window from its saved model (see `pipeline.io.outputs.artifacts` for the layout).

    python -m pipeline.record.saved_models predict --model_dir DIR --run_output OUT --run_id RUN --key S001 \
        --window 2013 [--model ridge] [--input rows.parquet] [--output predictions.csv]

A saved model is loaded only as the run's published ledger (under the run's --output, `--run_output`)
records it: the ledger row of the key x window gives the model (hence the loader) and the model file's
SHA-256, checked before anything is deserialised (pipeline.io.outputs.artifacts.load_model). With several
models (--model=a,b), `--model` says whose artifact, and --model_dir is <model_dir>/<model>.

Rows come from --input, else from the run's own source; they go through the pipeline's own validation,
duplicate rejection and feature generation: generated features (calendar, lags, rolling means) are
rebuilt from the key's rows, those before the window included, and the test rows predicted recursively
from the test start, as the run did. So the rows must reach back as far as the longest lag / rolling mean.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np
import pandas as pd
from apache_beam.io.filesystems import FileSystems

from pipeline.io.sources import files, local_query, source
from pipeline.io.outputs.artifacts import ArtifactRecord, ArtifactRefused, load_model, read_meta
from pipeline.io.publishing.results import read_json, read_table
from pipeline.io.outputs.sinks import SUMMARY_FILE
from pipeline.models import registry
from pipeline.params.values import PipelineParams
from pipeline.models import model_fit
from pipeline.stages.prepare import features, rows
from pipeline.stages.fit.split import split_at
from pipeline.stages.prepare.windows import WindowPlan


def params_from_meta(meta: dict) -> PipelineParams:
    values = dict(meta["parameters"])
    values["features"] = tuple(values["features"])
    known = {field.name for field in dataclasses.fields(PipelineParams)}
    return PipelineParams(**{k: v for k, v in values.items() if k in known})


def artifact_record(run_output: str, key: str, window_start: int, model: str | None = None) -> ArtifactRecord:
    """The run's published record of one key x window's saved model: its trained ledger row."""
    key_column = read_json(run_output, SUMMARY_FILE)["parameters"]["key_column"]
    ledger = read_table(run_output, "ledger", where=(key_column, [str(key)]))
    if len(ledger) and "artifact_sha256" not in ledger:
        raise ArtifactRefused(f"the ledger of {run_output} records no model hashes (a run without --model_dir, or "
                              "from before they were recorded): its saved models cannot be verified")
    if len(ledger):
        ledger = ledger[(ledger[key_column].astype(str) == str(key)) & (ledger["window_start"] == int(window_start))
                        & ledger["artifact_sha256"].notna()]
        if model is not None:
            ledger = ledger[ledger["model"] == model]
    if len(ledger) != 1:
        found = "no saved model" if not len(ledger) else f"saved models of {sorted(ledger['model'])} (give --model)"
        raise ArtifactRefused(f"the ledger of {run_output} records {found} for key {key!r}, window {window_start}"
                              + (f", model {model!r}" if model else ""))
    row = ledger.iloc[0]
    return ArtifactRecord(model=str(row["model"]), sha256=str(row["artifact_sha256"]))


def predict_window(model_dir: str, run_id: str, key: str, window_start: int, source_rows: pd.DataFrame,
                   run_output: str, model: str | None = None) -> pd.DataFrame:
    """Re-predicts the test periods of one key x window from its saved model, as the ledger of the
    run's output (`run_output`) records it (artifact_record).

    `source_rows` are rows as the source returns them (any keys and periods); see `window_rows`.
    Returns key, date, period, predicted, actual, sorted by date.
    """
    record = artifact_record(run_output, key, window_start, model)
    estimator, meta = load_model(model_dir, run_id, key, window_start, record)
    params = params_from_meta(meta)
    window = window_rows(source_rows, params, key, window_start)
    if registry.uses_history(meta["model"]):  # a statistical model predicts steps after its history
        test = window[window[params.time_column].isin(meta["test_periods"])].reset_index(drop=True)
        predicted = estimator.predict(estimator.inputs_of(test, params.date_column))
    else:
        columns = list(meta.get("model_columns") or meta["features"])  # artifacts before model_columns
        # As the run: test rows predicted recursively from the test start, unknown values imputed or not.
        split = split_at(window, min(meta["test_periods"]), params)
        test = split.test.reset_index(drop=True)
        _, _, matrix = split.arrays(columns, params.target, impute=model_fit.imputes(params.model))
        predicted = np.asarray(matrix(estimator.predict) if callable(matrix) else estimator.predict(matrix),
                               dtype=float) if len(test) else np.array([])
    return pd.DataFrame({
        params.key_column: str(key), params.date_column: test[params.date_column].to_numpy(),
        params.time_column: test[params.time_column].to_numpy(), "predicted": predicted,
        "actual": test[params.target].to_numpy(dtype=float)})


def window_rows(source_rows: pd.DataFrame, params: PipelineParams, key: str, window_start: int) -> pd.DataFrame:
    """One key x window's rows as the run gave them to the model: validated, a second row for a date
    rejected, generated features computed over the key's whole history (rows before the window
    included), then the window's rows (the test rows' are rebuilt from the test start: pipeline.stages.fit.split.WindowSplit)."""
    valid, _, _ = rows.validate_chunk(source_rows.reset_index(drop=True), params)
    if params.forecast:  # rows with an empty target (to forecast, or rejected) are in no window
        valid, _ = rows.split_future(valid, params)
    key_rows = valid[valid["__key"] == str(key)].drop(columns="__key").reset_index(drop=True)
    key_rows, duplicated = rows.in_date_order(key_rows, params)
    key_rows = key_rows.loc[~duplicated].reset_index(drop=True)
    spec = features.FeatureSpec.from_params(params)
    if spec.calendar:
        key_rows = features.add_calendar_features(key_rows, spec, params.date_column)
    if spec.target_names:
        key_rows = features.add_target_features(key_rows, spec, params)
    plan = WindowPlan.from_params(params)
    periods = key_rows[params.time_column]
    window = key_rows[(periods >= window_start) & (periods <= plan.end_of(window_start))]
    window = window.sort_values(params.date_column, kind="mergesort", ignore_index=True)
    return window


def source_rows_of_run(params: PipelineParams) -> pd.DataFrame:
    """The rows of the run's own source, read locally (files or DuckDB; not BigQuery)."""
    if params.input and params.source != "duckdb":
        return files.read_input_files(params.input, source.text_columns(params))
    if params.source == "bigquery":
        raise SystemExit("the run read BigQuery: export the rows and pass them with --input")
    connection = local_query.duckdb_connection(params.input or None, local_query.query_text_columns(params))
    try:
        return connection.execute(params.query).df()
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.record.saved_models",
                                     description="Re-predict one key x window from its saved model.")
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser("predict")
    predict.add_argument("--model_dir", required=True)
    predict.add_argument("--run_output", required=True,
                         help="the run's --output: its ledger vouches for the saved model (SHA-256, model)")
    predict.add_argument("--model", help="with several models (--model=a,b): whose saved model")
    predict.add_argument("--run_id", required=True)
    predict.add_argument("--key", required=True)
    predict.add_argument("--window", required=True, type=int, help="window_start")
    predict.add_argument("--input", help="rows (Parquet/CSV/JSONL); default: the run's own source")
    predict.add_argument("--output", help="CSV file to write (local or gs://); default: print")
    args = parser.parse_args(argv)
    try:
        return _predict(args)
    except ArtifactRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2


def _predict(args: argparse.Namespace) -> int:
    if args.input:
        with FileSystems.open(args.input) as handle:
            source_rows = files.read_file_table(args.input, handle)
    else:
        meta = read_meta(args.model_dir, args.run_id, args.key, args.window)  # JSON only: nothing is loaded
        source_rows = source_rows_of_run(params_from_meta(meta))
    result = predict_window(args.model_dir, args.run_id, args.key, args.window, source_rows, args.run_output,
                            args.model)
    if args.output:  # local or gs://
        with FileSystems.create(args.output) as handle:
            handle.write(result.to_csv(index=False).encode())
        print(f"{len(result)} predictions written to {args.output}")
    else:
        print(result.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
