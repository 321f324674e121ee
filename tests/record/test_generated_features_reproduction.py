"""Saved models and reproduction with generated features (calendar, lags, rolling means): meta.json
records every column the model was fitted on; re-prediction rebuilds the generated features from the
key's rows before the window, as the run did; reproduction keeps those rows in its query. Both give
the run's predictions bit for bit.

Daily rows over whole years, so the first days of a window take their lags and rolling means from
the year before it: a re-prediction or reproduction that sees only the window's years differs.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.io.outputs import artifacts
from pipeline.io.publishing import results
from pipeline.record import reproduce, saved_models
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline

YEARS = [2001, 2002, 2003, 2004]
FEATURE_ARGS = ("--calendar_features=day_of_week,month,holiday", "--lag_days=1,7", "--rolling_mean_days=5")
GENERATED = ["day_of_week", "month", "holiday", "lag_1", "lag_7", "rolling_mean_5"]
RUN = "features-1"


def daily_rows() -> pd.DataFrame:
    data = make_rows({"A": YEARS, "B/1": YEARS}, days=365, seed=7)
    # The target follows its own past, so the lags and rolling means carry weight in the fit.
    data["sales"] = data["sales"] + 5 * np.sin(np.arange(len(data)) / 9.0)
    return data


@pytest.fixture(scope="module")
def feature_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    path = str(root / "input.parquet")
    daily_rows().to_parquet(path, index=False)
    argv = (f"--input={path}", "--model=ridge", "--seed=5", f"--model_dir={root / 'models'}", f"--run_id={RUN}",
            *FEATURE_ARGS)
    summary = run_pipeline(root / "out", *argv)
    assert summary["groups_trained"] == 4  # 2 keys x windows 2001, 2002
    return {"root": root, "out": str(root / "out"), "input": path, "models": str(root / "models")}


def run_predictions(out: str, key: str, start: int) -> pd.DataFrame:
    frame = read_output(out, "predictions")
    frame = frame[(frame["shop_id"] == key) & (frame["window_start"] == start)]
    return frame.sort_values("date", ignore_index=True)


def test_meta_records_every_model_column(feature_run):
    _, meta = artifacts.load_model(feature_run["models"], RUN, "A", 2002,
                                   saved_models.artifact_record(feature_run["out"], "A", 2002))
    assert meta["model_columns"] == ["attr1", "attr2", "attr3", *GENERATED]
    assert meta["features"] == ["attr1", "attr2", "attr3"]


@pytest.mark.parametrize("key,start", [("A", 2001), ("A", 2002), ("B/1", 2002)])
def test_saved_model_repredicts_bit_for_bit(feature_run, key, start):
    source_rows = pd.read_parquet(feature_run["input"])
    again = saved_models.predict_window(feature_run["models"], RUN, key, start, source_rows, feature_run["out"])
    expected = run_predictions(feature_run["out"], key, start)
    assert len(again) == len(expected) == 365
    assert again["predicted"].to_numpy().tobytes() == expected["predicted"].to_numpy().tobytes()
    assert (pd.to_datetime(again["date"]) == pd.to_datetime(expected["date"])).all()


def test_saved_model_cli_reads_the_runs_own_source(feature_run, tmp_path):
    out = tmp_path / "again.csv"
    assert saved_models.main(["predict", f"--model_dir={feature_run['models']}", f"--run_output={feature_run['out']}",
                              f"--run_id={RUN}", "--key=A",
                              "--window=2002", f"--output={out}"]) == 0
    # pandas 2's default CSV float parser ("high") is off by 1 ulp on ~20% of decimals; the CSV holds
    # the shortest exact repr of each prediction, so read it back exactly.
    again = pd.read_csv(out, float_precision="round_trip")
    expected = run_predictions(feature_run["out"], "A", 2002)
    np.testing.assert_array_equal(again["predicted"].to_numpy(), expected["predicted"].to_numpy())


def test_reproduction_keeps_the_rows_before_the_window(feature_run):
    manifest = results.read_json(feature_run["out"], "manifest.json")
    out = str(feature_run["root"] / "reproduce")
    argv = reproduce.reproduce_argv(manifest, "A", 2002, out)
    query = next(a for a in argv if a.startswith("--query="))
    assert "<= 2004" in query and "BETWEEN" not in query
    assert {"--lag_days=1,7", "--rolling_mean_days=5"} <= set(argv)
    summary = run_pipeline(out, *(a for a in argv if not a.startswith("--output=")))
    assert summary["rows_read"] == 4 * 365  # key A, 2001..2004
    again = run_predictions(out, "A", 2002)
    expected = run_predictions(feature_run["out"], "A", 2002)
    assert len(again) == len(expected) == 365
    assert again["predicted"].to_numpy().tobytes() == expected["predicted"].to_numpy().tobytes()
    assert again["baseline"].to_numpy().tobytes() == expected["baseline"].to_numpy().tobytes()


def test_reproduction_without_history_features_still_restricts_to_the_window():
    manifest = {"parameters": {"key_column": "k", "time_column": "t", "window_size": 3, "query": "SELECT 1",
                               "lag_days": [], "rolling_mean_days": [], "calendar_features": ["month"]},
                "git_commit": "x"}
    query = next(a for a in reproduce.reproduce_argv(manifest, "A", 2002, "o") if a.startswith("--query="))
    assert "t BETWEEN 2002 AND 2004" in query
    assert json.dumps(manifest)  # plain data
