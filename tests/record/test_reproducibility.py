"""Reproducibility and evaluation: lineage columns, the manifest, the input fingerprint, the fold
plan dry run, saved models that re-predict exactly, and the HTML report.

One real run (Beam's in-process runner) on hand-made data is shared by most tests; the data has
a rejected row, keys that need path encoding, and groups skipped for each reason.
"""

from __future__ import annotations

import base64
import dataclasses
import glob
import html.parser
import io
import json
import os

import numpy as np
import pandas as pd
import pytest

from pipeline.io.outputs import artifacts
from pipeline.record import lineage
from pipeline.record import report
from pipeline.stages.fit import train
from pipeline.run import parse_args
from pipeline.stages.prepare.windows import WindowPlan
from pipeline.record import saved_models
from pipeline.stages.prepare import fingerprint
from pipeline.record import reproduce
from pipeline.io.publishing import results
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline

YEARS = [2001, 2002, 2003, 2004]
KEYS_TRAINED = ("A", "a/b", "..")
ARGS = ("--model=gbr", '--model_params={"n_estimators": 20, "subsample": 0.7}', "--min_train_rows=30",
        "--seed=11")


def sample_rows() -> pd.DataFrame:
    data = pd.concat([
        make_rows({key: YEARS for key in KEYS_TRAINED}, days=20, seed=3),
        make_rows({"gap": [2001, 2002, 2004]}, days=20, seed=4),  # windows with a missing year
        make_rows({"thin": YEARS}, days=10, seed=5),  # 20 training rows < --min_train_rows=30
    ], ignore_index=True)
    bad = data.iloc[[0]].assign(sales=np.nan)  # one rejected row (bad_target)
    return pd.concat([data, bad], ignore_index=True)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    data_path = str(root / "input.parquet")
    sample_rows().to_parquet(data_path, index=False)
    argv = (f"--input={data_path}", *ARGS, f"--model_dir={root / 'models'}", "--run_id=repro-1")
    summary = run_pipeline(root / "out", *argv)
    return {"root": root, "out": str(root / "out"), "input": data_path, "summary": summary, "argv": argv,
            "models": str(root / "models")}


# -- lineage and manifest ----------------------------------------------------------------------------

def test_lineage_columns_on_every_output_and_consistent(finished_run):
    params, _ = parse_args([f"--output={finished_run['out']}", *finished_run["argv"]])
    expected_hash = lineage.params_hash(params)
    seen = {}
    for name in ("predictions", "metrics", "ledger", "rejected_rows"):
        frame = read_output(finished_run["out"], name)
        assert len(frame), name
        for column in lineage.LINEAGE_COLUMNS:
            assert frame[column].nunique() == 1 and frame[column].notna().all(), (name, column)
        seen[name] = tuple(frame.loc[0, list(lineage.LINEAGE_COLUMNS)])
    assert len(set(seen.values())) == 1, seen
    run_id, params_hash, code_version = seen["predictions"]
    assert run_id == "repro-1" and params_hash == expected_hash
    assert code_version.startswith("0.1.0+")
    summary = finished_run["summary"]
    assert summary["lineage"]["params_hash"] == params_hash
    assert summary["lineage"]["code_version"] == code_version


def test_manifest_is_complete(finished_run):
    manifest = results.read_json(finished_run["out"], "manifest.json")
    summary = finished_run["summary"]
    for field in ("run_id", "params_hash", "code_version", "git_commit", "package_version", "image",
                  "started_at", "finished_at", "input_fingerprint", "libraries", "parameters", "outputs"):
        assert field in manifest, field
    assert manifest["started_at"] <= manifest["finished_at"]
    assert manifest["git_commit"] != "unknown" and len(manifest["git_commit"]) == 40  # read from git here
    assert {"python", "apache-beam", "scikit-learn", "pandas", "numpy"} <= set(manifest["libraries"])
    assert manifest["input_fingerprint"] == summary["input_fingerprint"]
    assert manifest["input_fingerprint"]["rows"] == summary["rows_read"] == len(sample_rows())
    assert manifest["counts"]["groups_trained"] == summary["groups_trained"]
    for name, files in manifest["outputs"].items():  # every written part is listed, and only those
        on_disk = sorted(os.path.basename(p) for p in glob.glob(os.path.join(finished_run["out"], name, "part-*")))
        assert files == on_disk and files, name


def test_params_hash_tracks_result_parameters_only():
    base, _ = parse_args(["--output=/tmp/a", "--run_id=r1"])
    moved, _ = parse_args(["--output=gs://b/c", "--run_id=r2", "--output_format=csv", "--plan_only"])
    changed, _ = parse_args(["--output=/tmp/a", "--run_id=r1", "--seed=5"])
    assert lineage.params_hash(base) == lineage.params_hash(moved)
    assert lineage.params_hash(base) != lineage.params_hash(changed)


def test_code_version_from_baked_commit(monkeypatch):
    monkeypatch.setenv(lineage.GIT_COMMIT_ENV, "0123456789abcdef0123")
    commit, dirty = lineage.git_state()
    assert (commit, dirty) == ("0123456789abcdef0123", False)
    assert lineage.code_version(commit, dirty) == "0.1.0+g0123456789ab"


def test_input_fingerprint_ignores_order_chunking_and_dtype_but_not_values():
    frame = sample_rows()[["shop_id", "year", "date", "sales", "attr1"]]

    def fingerprint_of(chunks):
        totals = {"input_rows": 0, "input_row_hash_sum": 0}
        for chunk in chunks:
            for name, value in fingerprint.chunk_fingerprint(chunk).items():
                totals[name] += value
        return fingerprint.input_fingerprint(totals)

    whole = fingerprint_of([frame])
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    assert fingerprint_of([shuffled.iloc[:37], shuffled.iloc[37:]]) == whole
    assert fingerprint_of([frame.assign(year=frame["year"].astype(float))]) == whole
    assert whole["rows"] == len(frame)
    changed = frame.copy()
    changed.loc[5, "sales"] += 0.001
    assert fingerprint_of([changed])["row_hash"] != whole["row_hash"]
    assert fingerprint_of([pd.concat([frame, frame.iloc[[3]]])])["row_hash"] != whole["row_hash"]


def test_row_hashes_equal_hash_pandas_object_of_the_canonical_rows():
    """Text is hashed once per distinct value, which must give pandas' own per-row hashes (so a
    fingerprint recorded by an earlier version still matches): missing values, dates, lists,
    mixed objects, datetimes with NaT."""
    import datetime

    rows = 60
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "key": pd.Series(rng.choice(["S1", "S2", " S3", None], rows), dtype="str"),
        "key_object": rng.choice(np.array(["a", "b", None], dtype=object), rows),
        "day": rng.choice(np.array([datetime.date(2015, 1, 1), datetime.date(2016, 2, 29), None], dtype=object), rows),
        "stamp": pd.to_datetime(rng.choice(["2015-01-01 00:00", "2016-02-29 10:00", None], rows)),
        "year": rng.integers(2010, 2020, rows),
        "value": np.where(rng.random(rows) < 0.2, np.nan, rng.normal(size=rows)),
        "flag": rng.random(rows) < 0.5,
        "mixed": pd.Series([[1, 2], "x", 3.5, None] * (rows // 4), dtype=object),
    })
    canonical = pd.DataFrame({name: fingerprint._canonical(frame[name]) for name in frame.columns})
    expected = pd.util.hash_pandas_object(canonical, index=False, categorize=False).to_numpy(dtype=np.uint64)
    assert np.array_equal(fingerprint.row_hashes(frame), expected)
    assert len(set(fingerprint.row_hashes(frame).tolist())) > rows // 2  # rows differ, hashes too


# -- determinism -------------------------------------------------------------------------------------

def test_same_predictions_with_one_and_two_worker_processes(tmp_path, write_parquet):
    data = make_rows({f"K{i}": YEARS for i in range(6)}, days=15, seed=9)
    path = write_parquet(data)
    args = (f"--input={path}", "--model=gbr", '--model_params={"n_estimators": 15, "subsample": 0.6}')
    run_pipeline(tmp_path / "one", *args)
    run_pipeline(tmp_path / "two", *args, "--direct_running_mode=multi_processing", "--direct_num_workers=2",
                 in_process=False)

    def predictions(name):
        frame = read_output(str(tmp_path / name), "predictions")
        return frame.sort_values(["shop_id", "window_start", "date"], ignore_index=True)

    one, two = predictions("one"), predictions("two")
    assert len(one) == 6 * 2 * 15
    assert one["predicted"].to_numpy().tobytes() == two["predicted"].to_numpy().tobytes()
    assert (one[["shop_id", "date", "window_start"]] == two[["shop_id", "date", "window_start"]]).all().all()
    assert one["params_hash"].iloc[0] == two["params_hash"].iloc[0]
    # the seed really reaches the models (subsample < 1), so the comparison above can fail
    params, _ = parse_args([f"--output={tmp_path}", *args])
    plan, window = WindowPlan.from_params(params), data[data["shop_id"] == "K0"].assign(
        date=lambda f: pd.to_datetime(f["date"]))
    window = window[window["year"] <= 2003]
    first, other = (train.train_and_predict("K0", 2001, window, dataclasses.replace(params, seed=seed), plan)
                    for seed in (0, 1))
    assert not np.array_equal(first.predictions["predicted"], other.predictions["predicted"])
    assert np.array_equal(first.predictions["predicted"], one.loc[one["shop_id"] == "K0", "predicted"][:15])


# -- plan-only ---------------------------------------------------------------------------------------

def test_plan_only_trains_nothing_and_matches_the_real_run(finished_run, capsys):
    out, models = str(finished_run["root"] / "plan"), str(finished_run["root"] / "plan_models")
    argv = [a for a in finished_run["argv"] if not a.startswith("--model_dir")]
    document = run_pipeline(out, *argv, "--plan_only", f"--model_dir={models}")
    printed = capsys.readouterr().out
    assert not any(os.path.exists(os.path.join(out, name))
                   for name in ("predictions", "metrics", "ledger", "summary.json", "report.html"))
    assert not os.path.exists(models)

    plan = read_output(out, "plan").set_index(["shop_id", "window_start"]).sort_index()
    ledger = read_output(finished_run["out"], "ledger").set_index(["shop_id", "window_start"]).sort_index()
    assert list(plan.index) == list(ledger.index)
    assert (plan["status"].map({"would_train": "trained", "would_skip": "skipped"}) == ledger["status"]).all()
    assert (plan["reason"] == ledger["reason"]).all()
    assert (plan[["rows_train", "rows_test"]] == ledger[["rows_train", "rows_test"]]).all().all()
    assert set(ledger["reason"]) == {"", "too_few_periods", "too_few_rows"}  # both skip rules exercised
    row = plan.loc[("A", 2001)]
    assert (row.train_start, row.train_end, row.test_start, row.test_end) == (2001, 2002, 2003, 2003)

    summary = finished_run["summary"]
    assert document["fits"] == summary["groups_trained"]
    assert document["would_skip_by_reason"] == summary["skipped_by_reason"]
    assert document["rows_read"] == summary["rows_read"]
    assert document["input_fingerprint"] == summary["input_fingerprint"]
    estimate = document["cost_estimate"]
    assert estimate["sample_fits"] == min(4, summary["groups_trained"]) and estimate["estimated_cpu_seconds"] > 0
    assert f"fits: {summary['groups_trained']}" in printed and "Estimated fitting cost" in printed
    assert results.read_json(out, "manifest.json")["outputs"]["plan"]


# -- saved models ------------------------------------------------------------------------------------

def test_saved_models_reload_and_repredict_exactly(finished_run):
    predictions = read_output(finished_run["out"], "predictions")
    rows = pd.read_parquet(finished_run["input"])
    groups = predictions.groupby(["shop_id", "window_start"])
    assert len(groups) == finished_run["summary"]["groups_trained"]
    run_dir = os.path.join(finished_run["models"], "repro-1")
    assert sorted(os.listdir(run_dir)) == sorted(artifacts.encode_key(k) for k in KEYS_TRAINED)
    assert "a%2Fb" in os.listdir(run_dir) and "%2E%2E" in os.listdir(run_dir)
    for (key, start), expected in groups:
        again = saved_models.predict_window(finished_run["models"], "repro-1", key, start, rows, finished_run["out"])
        expected = expected.sort_values("date", ignore_index=True)
        assert again["predicted"].to_numpy().tobytes() == expected["predicted"].to_numpy().tobytes()
        assert (pd.to_datetime(again["date"]) == pd.to_datetime(expected["date"])).all()
    _, meta = artifacts.load_model(finished_run["models"], "repro-1", "a/b", 2001,
                                   saved_models.artifact_record(finished_run["out"], "a/b", 2001))
    assert meta["train_periods"] == [2001, 2002] and meta["test_periods"] == [2003]
    assert meta["seed"] and meta["estimator_params"]["n_estimators"] == 20 and meta["metrics"]["rmse"] >= 0


def test_xgboost_artifact_in_its_own_format(tmp_path, write_parquet):
    path = write_parquet(make_rows({"X": [2001, 2002, 2003]}, days=15, seed=2))
    run_pipeline(tmp_path / "out", f"--input={path}", "--model=xgboost", '--model_params={"n_estimators": 10}',
                 f"--model_dir={tmp_path / 'models'}", "--run_id=xgb")
    directory = tmp_path / "models" / "xgb" / "X" / "2001"
    assert sorted(os.listdir(directory)) == ["meta.json", "model.json"]
    assert json.loads((directory / "model.json").read_text())["learner"]  # XGBoost's JSON model format
    expected = read_output(str(tmp_path / "out"), "predictions").sort_values("date")
    again = saved_models.predict_window(str(tmp_path / "models"), "xgb", "X", 2001, pd.read_parquet(path),
                                        str(tmp_path / "out"))
    assert again["predicted"].to_numpy().tobytes() == expected["predicted"].to_numpy().tobytes()


# -- report ------------------------------------------------------------------------------------------

class _Images(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.headings, self._in_heading = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        self._in_heading = tag == "h2"

    def handle_data(self, data):
        if self._in_heading:
            self.headings.append(data)
            self._in_heading = False


def test_report_renders_with_decodable_plots(finished_run):
    from matplotlib import image

    path = os.path.join(finished_run["out"], "report.html")
    assert os.path.exists(path)  # written by the run itself
    parser = _Images()
    with open(path, encoding="utf-8") as handle:
        parser.feed(handle.read())
    assert parser.headings == ["RMSE per test period vs the naive baseline", "Scale-free metrics vs seasonal naive",
                               "Per-key RMSE", "Predicted vs actual: best, median and worst keys (gbr)", "Every key",
                               "Ledger"]
    assert len(parser.images) == 5  # per period, per-key distribution, wins and losses, keys over time, ledger
    for attrs in parser.images:
        prefix = "data:image/png;base64,"
        assert attrs["src"].startswith(prefix)
        pixels = image.imread(io.BytesIO(base64.b64decode(attrs["src"][len(prefix):])), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 300 and pixels.std() > 0  # not blank
    key_rmse = report.per_key_rmse(read_output(finished_run["out"], "metrics"), "shop_id")
    predictions = read_output(finished_run["out"], "predictions")
    errors = predictions.assign(sq=lambda f: (f["predicted"] - f["actual"]) ** 2).groupby("shop_id")["sq"].mean() ** 0.5
    base = predictions.assign(sq=lambda f: (f["baseline"] - f["actual"]) ** 2).groupby("shop_id")["sq"].mean() ** 0.5
    np.testing.assert_allclose(key_rmse["rmse"].sort_index(), errors.sort_index(), rtol=1e-9)
    np.testing.assert_allclose(key_rmse["baseline_rmse"].sort_index(), base.sort_index(), rtol=1e-9)
    assert [key for _, key in report.best_median_worst(key_rmse)] == [
        errors.idxmin(), errors.sort_values().index[1], errors.idxmax()]
    assert sorted(results.read_table(finished_run["out"], "predictions", where=("shop_id", ["a/b"]))["shop_id"]
                  .unique()) == ["a/b"]


def test_one_key_window_reproduced_from_the_manifest(finished_run):
    manifest = results.read_json(finished_run["out"], "manifest.json")
    out = str(finished_run["root"] / "reproduce")
    argv = reproduce.reproduce_argv(manifest, "a/b", 2002, out)
    assert f"--output={out}" in argv and "--seed=11" in argv
    summary = run_pipeline(out, *(a for a in argv if not a.startswith("--output=")))
    assert summary["groups_planned"] == 1 and summary["groups_trained"] == 1
    again = read_output(out, "predictions").sort_values("date", ignore_index=True)
    original = read_output(finished_run["out"], "predictions")
    original = original[(original["shop_id"] == "a/b") & (original["window_start"] == 2002)].sort_values(
        "date", ignore_index=True)
    assert len(again) == len(original) == 20
    assert again["predicted"].to_numpy().tobytes() == original["predicted"].to_numpy().tobytes()
    assert again["baseline"].to_numpy().tobytes() == original["baseline"].to_numpy().tobytes()


def test_report_of_a_run_that_trained_nothing():
    summary = {"run_id": "r", "groups_planned": 2, "groups_skipped": 2, "parameters": {"key_column": "k"}}
    ledger = pd.DataFrame({"status": ["skipped", "skipped"], "reason": ["too_few_rows", "too_few_periods"]})
    document = report.render(summary, None, pd.DataFrame(), lambda keys: pd.DataFrame(), ledger)
    parser = _Images()
    parser.feed(document)
    assert "No predictions: nothing was trained." in document
    assert len(parser.images) == 1 and "too_few_periods" in document  # the ledger plot and its table
