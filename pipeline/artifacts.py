"""Saved models: one artifact per trained key x window under --model_dir (local or gs://).

Layout:

    <model_dir>/<run_id>/<key>/<window_start>/model.joblib   scikit-learn estimators (joblib)
    <model_dir>/<run_id>/<key>/<window_start>/model.json     XGBoost, in XGBoost's own JSON format
    <model_dir>/<run_id>/<key>/<window_start>/meta.json      parameters, seed, metrics, features, periods

`<key>` is the key percent-encoded (RFC 3986, with `.` also encoded), so any key value is one
safe path segment: `S/01` -> `S%2F01`, `..` -> `%2E%2E`; `urllib.parse.unquote` gives it back.
Writes go through Beam's FileSystems, so gs:// works on Dataflow; a retried bundle rewrites the
same bytes to the same path.

Re-predict a window from its artifact (rows from --input, else from the run's own source):

    python -m pipeline.artifacts predict --model_dir DIR --run_id RUN --key S001 --window 2013 \
        [--input rows.parquet] [--output predictions.csv]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import sys
from urllib.parse import quote

import numpy as np
import pandas as pd
from apache_beam.io.filesystems import FileSystems

from pipeline.options import PipelineParams

META_FILE = "meta.json"
XGBOOST_MODELS = ("xgboost",)


def encode_key(key: str) -> str:
    return quote(str(key), safe="").replace(".", "%2E")


def artifact_dir(model_dir: str, run_id: str, key: str, window_start: int) -> str:
    return FileSystems.join(model_dir, run_id, encode_key(key), str(int(window_start)))


def model_file(model: str) -> str:
    return "model.json" if model in XGBOOST_MODELS else "model.joblib"


def _write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path) as handle:
        handle.write(data)


def _read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as handle:
        return handle.read()


def _json_safe(value):
    """Estimator parameters as JSON: NaN/inf -> None, anything exotic -> its repr."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return repr(value)


def serialize(estimator, model: str) -> bytes:
    if model in XGBOOST_MODELS:
        return bytes(estimator.get_booster().save_raw(raw_format="json"))
    import joblib

    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    return buffer.getvalue()


def deserialize(data: bytes, model: str):
    if model in XGBOOST_MODELS:
        import xgboost

        estimator = xgboost.XGBRegressor()
        estimator.load_model(bytearray(data))
        return estimator
    import joblib

    return joblib.load(io.BytesIO(data))


def save_model(estimator, params: PipelineParams, plan, key: str, window_start: int, seed: int,
               metrics: dict) -> str:
    """Writes model + meta.json for one trained key x window; returns the artifact directory."""
    directory = artifact_dir(params.model_dir, params.run_id, key, window_start)
    filename = model_file(params.model)
    _write_bytes(FileSystems.join(directory, filename), serialize(estimator, params.model))
    meta = {
        "run_id": params.run_id, "key": str(key), "window_start": int(window_start),
        "window_end": plan.end_of(window_start),
        "train_periods": list(plan.train_periods(window_start)),
        "test_periods": list(plan.test_periods_of(window_start)),
        "model": params.model, "model_file": filename,
        "estimator": f"{type(estimator).__module__}.{type(estimator).__name__}",
        "estimator_params": _json_safe(estimator.get_params()), "seed": seed,
        "features": list(params.features), "target": params.target,
        "metrics": _json_safe({k: v for k, v in metrics.items() if k not in (params.key_column, "run_id")}),
        "parameters": params.as_dict(),
    }
    _write_bytes(FileSystems.join(directory, META_FILE), json.dumps(meta, indent=2).encode())
    return directory


def load_model(model_dir: str, run_id: str, key: str, window_start: int):
    """(estimator, meta) of one saved key x window."""
    directory = artifact_dir(model_dir, run_id, key, window_start)
    meta = json.loads(_read_bytes(FileSystems.join(directory, META_FILE)))
    estimator = deserialize(_read_bytes(FileSystems.join(directory, meta["model_file"])), meta["model"])
    return estimator, meta


def params_from_meta(meta: dict) -> PipelineParams:
    values = dict(meta["parameters"])
    values["features"] = tuple(values["features"])
    known = {field.name for field in dataclasses.fields(PipelineParams)}
    return PipelineParams(**{k: v for k, v in values.items() if k in known})


def predict_window(model_dir: str, run_id: str, key: str, window_start: int,
                   source_rows: pd.DataFrame) -> pd.DataFrame:
    """Re-predicts the test periods of one key x window from its saved model.

    `source_rows` are rows as the source returns them (any keys and periods); they go through the
    pipeline's own validation, so features are prepared exactly as in the run. Returns key, date,
    period, predicted, actual, sorted by date.
    """
    from pipeline import rows

    estimator, meta = load_model(model_dir, run_id, key, window_start)
    params = params_from_meta(meta)
    valid, _, _ = rows.validate_chunk(source_rows.reset_index(drop=True), params)
    test = valid[(valid["__key"] == str(key)) & valid[params.time_column].isin(meta["test_periods"])]
    test = test.sort_values(params.date_column, kind="mergesort", ignore_index=True)
    features = test[list(meta["features"])].to_numpy(dtype=float)
    predicted = np.asarray(estimator.predict(features), dtype=float) if len(test) else np.array([])
    return pd.DataFrame({
        params.key_column: str(key), params.date_column: test[params.date_column].to_numpy(),
        params.time_column: test[params.time_column].to_numpy(), "predicted": predicted,
        "actual": test[params.target].to_numpy(dtype=float)})


def source_rows_of_run(params: PipelineParams) -> pd.DataFrame:
    """The rows of the run's own source, read locally (files or DuckDB; not BigQuery)."""
    from pipeline import source

    if params.input:
        frames = []
        for match in sorted(FileSystems.match([params.input])[0].metadata_list, key=lambda m: m.path):
            with FileSystems.open(match.path) as handle:
                frames.append(source.read_file_table(match.path, handle))
        return pd.concat(frames, ignore_index=True)
    if params.source == "bigquery":
        raise SystemExit("the run read BigQuery: export the rows and pass them with --input")
    connection = source.duckdb_connection()
    try:
        return connection.execute(params.query).df()
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.artifacts",
                                     description="Re-predict one key x window from its saved model.")
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser("predict")
    predict.add_argument("--model_dir", required=True)
    predict.add_argument("--run_id", required=True)
    predict.add_argument("--key", required=True)
    predict.add_argument("--window", required=True, type=int, help="window_start")
    predict.add_argument("--input", help="rows (Parquet/CSV/JSONL); default: the run's own source")
    predict.add_argument("--output", help="CSV file to write (local or gs://); default: print")
    args = parser.parse_args(argv)
    if args.input:
        from pipeline import source

        with FileSystems.open(args.input) as handle:
            rows = source.read_file_table(args.input, handle)
    else:
        _, meta = load_model(args.model_dir, args.run_id, args.key, args.window)
        rows = source_rows_of_run(params_from_meta(meta))
    result = predict_window(args.model_dir, args.run_id, args.key, args.window, rows)
    if args.output:  # local or gs://
        _write_bytes(args.output, result.to_csv(index=False).encode())
        print(f"{len(result)} predictions written to {args.output}")
    else:
        print(result.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
