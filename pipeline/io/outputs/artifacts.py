"""Saved models: one artifact per trained key x window under --model_dir (local or gs://).

Layout:

    <model_dir>/<run_id>/<key>/<window_start>/model.joblib   scikit-learn estimators (joblib)
    <model_dir>/<run_id>/<key>/<window_start>/model.json     XGBoost, in XGBoost's own JSON format
    <model_dir>/<run_id>/<key>/<window_start>/meta.json      parameters, seed, metrics, features, periods,
                                                             model_columns (generated features included)

`<key>` is the key percent-encoded (RFC 3986, with `.` also encoded), so any key value is one
safe path segment: `S/01` -> `S%2F01`, `..` -> `%2E%2E`; `urllib.parse.unquote` gives it back.
A key whose encoding is longer than `KEY_FOLDER_CHARS` (file names are limited to 255 bytes; 40 CJK
characters encode to 360) gets a bounded folder name instead: the encoding's first characters, `+`,
and a hash of the key (`+` never appears in an encoding, so the two forms cannot meet); the full key
is in meta.json, and `key_folder` finds the folder from the key.
Writes go through Beam's FileSystems, so gs:// works on Dataflow; a retried bundle rewrites the
same bytes to the same path.

Saved models are code (a joblib file is a pickle: loading it runs what it says). Each artifact's
SHA-256 is in the run's published ledger (column artifact_sha256), and `load_model` loads only what
that record vouches for: the loader is the one of the ledger's model, meta.json's model_file must be
that loader's plain file name inside the artifact folder, and the bytes must have the recorded
hash; anything else is refused (ArtifactRefused) before a byte is deserialised.
XGBoost models are saved in XGBoost's JSON format, which is data. scikit-learn has no format of its
own but pickle (joblib); skops (a restricted loader for scikit-learn models) is not in the lock.

Re-predicting a window from its artifact is `pipeline.record.saved_models`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
from urllib.parse import quote

import numpy as np
from apache_beam.io.filesystems import FileSystems

from pipeline.params.values import PipelineParams

META_FILE = "meta.json"
XGBOOST_MODELS = ("xgboost",)
KEY_FOLDER_CHARS = 120  # longer encodings: a prefix + a hash (well under the 255-byte file-name limit)
_KEY_PREFIX_CHARS, _KEY_HASH_CHARS = 60, 32


class ArtifactRefused(ValueError):
    """A saved model the run's record does not vouch for: nothing of it was deserialised."""


@dataclasses.dataclass(frozen=True)
class ArtifactRecord:
    """What the run's published ledger says of one artifact: its model (hence its loader) and the
    SHA-256 of its model file."""
    model: str
    sha256: str


def encode_key(key: str) -> str:
    return quote(str(key), safe="").replace(".", "%2E")


def key_folder(key: str) -> str:
    """The key's folder name: its encoding, or a bounded name when that is too long for a file name."""
    encoded = encode_key(key)
    if len(encoded) <= KEY_FOLDER_CHARS:
        return encoded
    prefix = encoded[:_KEY_PREFIX_CHARS]
    if "%" in prefix[-2:]:  # never cut a %XX escape in two
        prefix = prefix[:prefix.rindex("%")]
    digest = hashlib.sha256(str(key).encode("utf-8", "surrogatepass")).hexdigest()[:_KEY_HASH_CHARS]
    return f"{prefix}+{digest}"


def artifact_dir(model_dir: str, run_id: str, key: str, window_start: int) -> str:
    return FileSystems.join(model_dir, run_id, key_folder(key), str(int(window_start)))


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


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def _write_model(directory: str, estimator, model: str) -> str:
    """Writes the model file into `directory`; returns its SHA-256 (for the ledger)."""
    data = serialize(estimator, model)
    _write_bytes(FileSystems.join(directory, model_file(model)), data)
    return sha256(data)


def save_model(estimator, params: PipelineParams, plan, key: str, window_start: int, seed: int,
               metrics: dict, model_columns: list[str]) -> str:
    """Writes model + meta.json for one trained key x window; returns the model file's SHA-256.
    `model_columns`: the columns the model was fitted on, in order (--features, then generated ones)."""
    directory = artifact_dir(params.model_dir, params.run_id, key, window_start)
    filename = model_file(params.model)
    digest = _write_model(directory, estimator, params.model)
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
    return digest


FORECAST_DIR = "forecast"


def save_forecast_model(estimator, params: PipelineParams, key: str, seed: int, meta: dict) -> str:
    """Writes the model + meta.json of one key's forecast (--forecast) to
    <model_dir>/<run_id>/<key>/forecast/; returns the model file's SHA-256."""
    directory = FileSystems.join(params.model_dir, params.run_id, key_folder(key), FORECAST_DIR)
    filename = model_file(params.model)
    digest = _write_model(directory, estimator, params.model)
    document = {
        "run_id": params.run_id, "key": str(key), "model": params.model, "model_file": filename,
        "estimator": f"{type(estimator).__module__}.{type(estimator).__name__}",
        "estimator_params": _json_safe(estimator.get_params()), "seed": seed,
        "features": list(params.features), "target": params.target, **_json_safe(meta),
        "parameters": params.as_dict(),
    }
    _write_bytes(FileSystems.join(directory, META_FILE), json.dumps(document, indent=2).encode())
    return digest


def read_meta(model_dir: str, run_id: str, key: str, window_start: int) -> dict:
    """meta.json of one saved key x window (JSON: data only), checked to be that key's."""
    directory = artifact_dir(model_dir, run_id, key, window_start)
    meta = json.loads(_read_bytes(FileSystems.join(directory, META_FILE)))
    if meta.get("key") != str(key) or meta.get("window_start") != int(window_start):
        raise ArtifactRefused(f"{directory}/{META_FILE} is of key {meta.get('key')!r}, window "
                              f"{meta.get('window_start')!r}, not of key {key!r}, window {window_start}")
    return meta


def load_model(model_dir: str, run_id: str, key: str, window_start: int, record: ArtifactRecord):
    """(estimator, meta) of one saved key x window, if it is the artifact `record` (the run's ledger)
    vouches for: loaded with the loader of the record's model, from that loader's file name in the
    artifact folder, after its SHA-256 matched the record's. Otherwise ArtifactRefused."""
    directory = artifact_dir(model_dir, run_id, key, window_start)
    meta = read_meta(model_dir, run_id, key, window_start)
    expected_file = model_file(record.model)
    if meta.get("model") != record.model or meta.get("model_file") != expected_file:
        raise ArtifactRefused(
            f"{directory}/{META_FILE} names model {meta.get('model')!r} in {meta.get('model_file')!r}; the run's "
            f"ledger says {record.model!r}, whose file is {expected_file!r} in the artifact folder")
    data = _read_bytes(FileSystems.join(directory, expected_file))
    if sha256(data) != record.sha256:
        raise ArtifactRefused(f"{directory}/{expected_file} has SHA-256 {sha256(data)}; the run's ledger "
                              f"recorded {record.sha256!r}: not the file the run saved")
    return deserialize(data, record.model), meta
