"""Saved models: one artifact per trained key x window under --model_dir (local or gs://).

Layout:

    <model_dir>/<run_id>/<key>/<window_start>/model.joblib   scikit-learn estimators (joblib)
    <model_dir>/<run_id>/<key>/<window_start>/model.json     XGBoost, in XGBoost's own JSON format
    <model_dir>/<run_id>/<key>/<window_start>/meta.json      parameters, seed, metrics, features, periods,
                                                             model_columns (generated features included)

`<key>` is the key percent-encoded (RFC 3986, with `.` also encoded), so any key value is one
safe path segment: `S/01` -> `S%2F01`, `..` -> `%2E%2E`; `urllib.parse.unquote` gives it back.
Writes go through Beam's FileSystems, so gs:// works on Dataflow; a retried bundle rewrites the
same bytes to the same path.

Re-predicting a window from its artifact is `pipeline.record.saved_models`.
"""

from __future__ import annotations

import io
import json
import math
from urllib.parse import quote

import numpy as np
from apache_beam.io.filesystems import FileSystems

from pipeline.params.values import PipelineParams

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
               metrics: dict, model_columns: list[str]) -> str:
    """Writes model + meta.json for one trained key x window; returns the artifact directory.
    `model_columns`: the columns the model was fitted on, in order (--features, then generated ones)."""
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
        "features": list(params.features), "model_columns": list(model_columns), "target": params.target,
        "metrics": _json_safe({k: v for k, v in metrics.items() if k not in (params.key_column, "run_id")}),
        "parameters": params.as_dict(),
    }
    _write_bytes(FileSystems.join(directory, META_FILE), json.dumps(meta, indent=2).encode())
    return directory


FORECAST_DIR = "forecast"


def save_forecast_model(estimator, params: PipelineParams, key: str, seed: int, meta: dict) -> str:
    """Writes the model + meta.json of one key's forecast (--forecast) to
    <model_dir>/<run_id>/<key>/forecast/; returns the directory."""
    directory = FileSystems.join(params.model_dir, params.run_id, encode_key(key), FORECAST_DIR)
    filename = model_file(params.model)
    _write_bytes(FileSystems.join(directory, filename), serialize(estimator, params.model))
    document = {
        "run_id": params.run_id, "key": str(key), "model": params.model, "model_file": filename,
        "estimator": f"{type(estimator).__module__}.{type(estimator).__name__}",
        "estimator_params": _json_safe(estimator.get_params()), "seed": seed,
        "features": list(params.features), "target": params.target, **_json_safe(meta),
        "parameters": params.as_dict(),
    }
    _write_bytes(FileSystems.join(directory, META_FILE), json.dumps(document, indent=2).encode())
    return directory


def load_model(model_dir: str, run_id: str, key: str, window_start: int):
    """(estimator, meta) of one saved key x window."""
    directory = artifact_dir(model_dir, run_id, key, window_start)
    meta = json.loads(_read_bytes(FileSystems.join(directory, META_FILE)))
    estimator = deserialize(_read_bytes(FileSystems.join(directory, meta["model_file"])), meta["model"])
    return estimator, meta
