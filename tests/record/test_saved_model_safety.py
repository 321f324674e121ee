"""Saved models are code: a crafted artifact is refused before anything of it is deserialised, and
keys long in bytes get a bounded folder name (issue 23 §5 and §2).

Real runs (Beam's in-process runner) write real artifacts; the tests then tamper with them as an
attacker with write access to --model_dir would, and plant a pickle whose unpickling writes a marker
file: the marker must never appear.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle

import pandas as pd
import pytest

from pipeline.io.outputs import artifacts
from pipeline.record import saved_models
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline

RUN = "safety"
LONG_KEY = "東京都渋谷区神宮前一丁目店舗番号四十二号館地下一階食品売場北側第三区画特設会場店"  # 40 CJK characters


class _WritesMarker:
    """Unpickling this runs Path(marker).touch(): the stand-in for an attacker's code."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def _run(root: pathlib.Path, model: str, keys: dict) -> dict:
    path = root / "input.parquet"
    make_rows(keys, days=15, seed=7).to_parquet(path, index=False)
    models = root / "models"
    model_params = '{"n_estimators": 5}' if model == "xgboost" else "{}"
    run_pipeline(root / "out", f"--input={path}", f"--model={model}", f"--model_params={model_params}",
                 f"--model_dir={models}", f"--run_id={RUN}")
    return {"out": str(root / "out"), "models": str(models), "rows": pd.read_parquet(path), "root": root}


@pytest.fixture
def ridge_run(tmp_path):
    return _run(tmp_path, "ridge", {"A": [2001, 2002, 2003]})


def _artifact(run: dict, key: str = "A", start: int = 2001) -> pathlib.Path:
    return pathlib.Path(artifacts.artifact_dir(run["models"], RUN, key, start))


def _edit_meta(directory: pathlib.Path, **changes) -> None:
    meta = json.loads((directory / "meta.json").read_text())
    (directory / "meta.json").write_text(json.dumps({**meta, **changes}))


def _repredict(run: dict, key: str = "A", start: int = 2001) -> pd.DataFrame:
    return saved_models.predict_window(run["models"], RUN, key, start, run["rows"], run["out"])


def test_ledger_records_each_artifacts_sha256(ridge_run):
    ledger = read_output(ridge_run["out"], "ledger")
    trained = ledger[ledger["status"] == "trained"]
    assert len(trained) == 1
    data = (_artifact(ridge_run) / "model.joblib").read_bytes()
    assert trained["artifact_sha256"].iloc[0] == artifacts.sha256(data)


def test_an_absolute_model_file_is_refused_before_unpickling(ridge_run, tmp_path):
    marker, elsewhere = tmp_path / "marker", tmp_path / "elsewhere.joblib"
    elsewhere.write_bytes(pickle.dumps(_WritesMarker(marker)))
    _edit_meta(_artifact(ridge_run), model_file=str(elsewhere))
    with pytest.raises(artifacts.ArtifactRefused, match="model_file|model.joblib"):
        _repredict(ridge_run)
    assert not marker.exists()


def test_a_replaced_model_file_is_refused_by_its_hash(ridge_run, tmp_path):
    marker = tmp_path / "marker"
    (_artifact(ridge_run) / "model.joblib").write_bytes(pickle.dumps(_WritesMarker(marker)))
    with pytest.raises(artifacts.ArtifactRefused, match="SHA-256"):
        _repredict(ridge_run)
    assert not marker.exists()
    # The command line says so and exits non-zero, without a traceback.
    assert saved_models.main(["predict", f"--model_dir={ridge_run['models']}", f"--run_output={ridge_run['out']}",
                              f"--run_id={RUN}", "--key=A", "--window=2001"]) == 2
    assert not marker.exists()


def test_meta_naming_another_loader_is_refused_before_unpickling(tmp_path):
    run = _run(tmp_path, "xgboost", {"X": [2001, 2002, 2003]})
    directory, marker = _artifact(run, "X"), tmp_path / "marker"
    assert sorted(os.listdir(directory)) == ["meta.json", "model.json"]
    (directory / "model.joblib").write_bytes(pickle.dumps(_WritesMarker(marker)))
    _edit_meta(directory, model="ridge", model_file="model.joblib")  # would pick joblib's loader
    with pytest.raises(artifacts.ArtifactRefused, match="'xgboost'"):
        _repredict(run, "X")
    assert not marker.exists()


def test_a_long_multibyte_key_gets_a_bounded_folder_and_repredicts(tmp_path):
    assert len(LONG_KEY) == 40 and len(artifacts.encode_key(LONG_KEY)) > 255  # too long as a file name
    run = _run(tmp_path, "ridge", {LONG_KEY: [2001, 2002, 2003], "B": [2001, 2002, 2003]})
    ledger = read_output(run["out"], "ledger")
    assert set(ledger["status"]) == {"trained"} and len(ledger) == 2
    folders = os.listdir(pathlib.Path(run["models"]) / RUN)
    assert sorted(folders) == sorted([artifacts.key_folder(LONG_KEY), "B"])
    bounded = artifacts.key_folder(LONG_KEY)
    assert len(bounded.encode()) <= artifacts.KEY_FOLDER_CHARS and "+" in bounded
    assert bounded.startswith(artifacts.encode_key(LONG_KEY)[:30])  # readable: the key's first characters
    meta = json.loads((_artifact(run, LONG_KEY) / "meta.json").read_text())
    assert meta["key"] == LONG_KEY
    again = _repredict(run, LONG_KEY)
    expected = read_output(run["out"], "predictions")
    expected = expected[expected["shop_id"] == LONG_KEY].sort_values("date")
    assert len(again) == len(expected) > 0
    assert again["predicted"].to_numpy().tobytes() == expected["predicted"].to_numpy().tobytes()


def test_bounded_folder_names_stay_apart():
    similar = [LONG_KEY, LONG_KEY + "2", LONG_KEY[:-1] + "x"]
    assert len({artifacts.key_folder(k) for k in similar}) == 3
    # A short key that looks like a bounded name cannot take one's place: "+" is always encoded.
    assert artifacts.key_folder(artifacts.key_folder(LONG_KEY)) != artifacts.key_folder(LONG_KEY)
    assert artifacts.key_folder("S/01") == "S%2F01"  # short keys: their encoding, as before


def test_the_hash_column_only_with_model_dir():
    from pipeline.io.outputs import sinks
    from pipeline.run import parse_args

    without, with_models = (sinks.output_schemas(parse_args(argv)[0])["ledger"].names
                            for argv in ([], ["--model_dir=/tmp/models"]))
    assert "artifact_sha256" not in without and "artifact_sha256" in with_models  # existing tables keep their schema
