"""Several models side by side (--model=a,b): each model's rows are exactly a one-model run's, one
model's failure is its own ledger row, keyed grids, refusals before work, and the plan per model."""

import json

import pandas as pd
import pytest

from pipeline.params.declare import ParameterError
from pipeline.record.lineage import params_hash
from pipeline.run import parse_args
from pipeline.stages.decide import compare
from tests.helpers.faulty_models import faulty_model  # noqa: F401 (fixture)
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline

SPEC = {"A": [2001, 2002, 2003, 2004], "B": [2001, 2002, 2003, 2004], "C": [2002, 2003, 2004]}
ORDER = ["shop_id", "window_start", "date"]


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("compare") / "rows.parquet"
    make_rows(SPEC, days=25).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_path):
    base = tmp_path_factory.mktemp("compare_runs")
    for name, model in (("both", "ridge,gbr"), ("ridge", "ridge"), ("gbr", "gbr")):
        run_pipeline(base / name, f"--input={data_path}", f"--model={model}", "--run_id=cmp")
    return base


def test_each_model_in_a_several_model_run_equals_its_one_model_run(runs):
    both = read_output(str(runs / "both"), "predictions")
    assert list(both["model"].unique()) in (["ridge", "gbr"], ["gbr", "ridge"])
    for model in ("ridge", "gbr"):
        alone = read_output(str(runs / model), "predictions").sort_values(ORDER, ignore_index=True)
        side = both[both["model"] == model].sort_values(ORDER, ignore_index=True)
        columns = [c for c in alone.columns if c != "params_hash"]  # the runs' parameters differ
        pd.testing.assert_frame_equal(side[columns], alone[columns])  # bit for bit
    ledger = read_output(str(runs / "both"), "ledger")
    per_group = ledger.groupby(["shop_id", "window_start"])["model"].apply(sorted)
    assert all(models == ["gbr", "ridge"] for models in per_group)
    metrics = read_output(str(runs / "both"), "metrics")
    assert metrics.groupby("model").size().to_dict() == {"gbr": 5, "ridge": 5}  # A, B: 2 windows; C: 1


def test_one_models_failure_is_that_models_ledger_row(tmp_path, data_path, faulty_model):
    out = tmp_path / "out"
    summary = run_pipeline(out, f"--input={data_path}", "--model=ridge,faulty",
                           '--model_params={"faulty": {"fail_fraction": 1.0}}', "--max_failure_rate=1")
    ledger = read_output(str(out), "ledger")
    by_model = ledger[ledger["status"] != "skipped"].groupby("model")["status"].apply(set).to_dict()
    assert by_model == {"ridge": {"trained"}, "faulty": {"failed"}}
    assert set(ledger.loc[ledger["status"] == "failed", "error_class"]) == {"InjectedFault"}
    assert set(read_output(str(out), "predictions")["model"]) == {"ridge"}
    assert summary["groups_planned"] == 12 and summary["groups_failed"] == 5


def test_keyed_grid_searches_only_the_models_it_names(tmp_path, data_path):
    out = tmp_path / "out"
    run_pipeline(out, f"--input={data_path}", "--model=ridge,gbr", '--param_grid={"ridge": {"alpha": [0.1, 10]}}',
                 '--model_params={"gbr": {"n_estimators": 20}}')
    searched = read_output(str(out), "search")
    assert set(searched["model"]) == {"ridge"} and set(searched["model_params"]) == {'{"alpha": 0.1}',
                                                                                      '{"alpha": 10}'}
    metrics = read_output(str(out), "metrics")
    assert set(metrics.loc[metrics["model"] == "gbr", "model_params"]) == {'{"n_estimators": 20}'}


@pytest.mark.parametrize("argv, name", [
    (["--model=ridge,gbr", '--param_grid={"alpha": [0.1, 1]}'], "param_grid"),  # a plain grid: which model?
    (["--model=ridge,gbr", '--param_grid=[{"alpha": 1}]'], "param_grid"),
    (["--model=ridge,gbr", '--model_params={"alpha": 2}'], "model_params"),
    (["--model=ridge,gbr", '--param_grid={"ridge": {"max_depth": [2]}}'], "model_params"),  # checked per model
    (["--model=ridge,ridge"], "model"),
    (["--model=ridge,nope"], "model"),
])
def test_refused_before_work_naming_the_parameter(argv, name):
    with pytest.raises(ParameterError) as error:
        parse_args(argv)
    assert error.value.name == name


def test_per_model_parameters():
    params, _ = parse_args(["--model=ridge,gbr", '--model_params={"gbr": {"max_depth": 2}}',
                            '--param_grid={"ridge": {"alpha": [1, 2]}}', "--model_dir=/tmp/m"])
    ridge, gbr = compare.per_model(params)
    assert (ridge.model, ridge.model_params, ridge.param_grid, ridge.model_dir) == (
        "ridge", {}, {"alpha": [1, 2]}, "/tmp/m/ridge")
    assert (gbr.model, gbr.model_params, gbr.param_grid) == ("gbr", {"max_depth": 2}, None)


def test_one_model_params_hash_is_unchanged():
    # Computed on main before several models existed: a one-model run keeps its lineage.
    assert params_hash(parse_args(["--run_id=x"])[0]) == "83bf4a6479a81946"
    argv = ["--model=ridge", '--model_params={"alpha": 2.0}', "--window_size=4", "--test_periods=2"]
    assert params_hash(parse_args(argv)[0]) == "6366c68d414ee911"


def test_plan_only_counts_fits_per_model(tmp_path, data_path):
    out = tmp_path / "plan"
    document = run_pipeline(out, f"--input={data_path}", "--model=ridge,gbr", "--plan_only")
    assert document["fits_by_model"] == {"ridge": 5, "gbr": 5} and document["fits"] == 10
    estimate = document["cost_estimate"]
    assert set(estimate["sample_by_model"]) == {"ridge", "gbr"}
    assert set(estimate["estimated_cpu_seconds_by_model"]) == {"ridge", "gbr"}
    plan = read_output(str(out), "plan")
    assert plan.groupby("model").size().to_dict() == {"gbr": 6, "ridge": 6}  # C's first window is skipped
    assert json.dumps(document)  # plain JSON


def test_saved_models_one_artifact_per_model(tmp_path, data_path):
    from pipeline.io.outputs.artifacts import load_model
    from pipeline.record.saved_models import artifact_record

    out, models = tmp_path / "out", tmp_path / "models"
    run_pipeline(out, f"--input={data_path}", "--model=ridge,gbr", f"--model_dir={models}", "--run_id=saved")
    for model, estimator_class in (("ridge", "Ridge"), ("gbr", "GradientBoostingRegressor")):
        record = artifact_record(str(out), "A", 2001, model)
        estimator, meta = load_model(str(models / model), "saved", "A", 2001, record)
        assert type(estimator).__name__ == estimator_class and meta["model"] == model
