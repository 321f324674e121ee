"""Every registered model trains and predicts; bad parameters fail before the pipeline starts."""

import numpy as np
import pytest

from pipeline.models import registry
from pipeline import run
from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from pipeline.stages.fit.train import train_and_predict
from pipeline.stages.prepare.windows import WindowPlan
from tests.helpers.pipeline_runs import make_rows


@pytest.mark.parametrize("name", sorted(n for n in registry.REGISTRY if not registry.REGISTRY[n].uses_history))
def test_each_model_trains_and_predicts(name):  # the statistical ones: tests/models/test_statistical.py
    data = make_rows({"A": [2001, 2002, 2003]}, days=40, seed=1)
    data["date"] = data["date"].astype("datetime64[ns]")
    params, _ = parse_args([f"--model={name}", "--run_id=r1"])
    result = train_and_predict("A", 2001, data, params, WindowPlan(3, 1, 1))
    assert result.ledger["status"] == "trained", result.ledger
    assert len(result.predictions) == 40
    assert np.isfinite(result.predictions["predicted"]).all()
    # sales = 10 + 3*attr1 + small noise: every model should beat predicting the mean
    assert result.metrics["rmse"] < result.predictions["actual"].std()


@pytest.mark.parametrize("argv, parameter, allowed", [
    (["--model=lightgbm"], "model", "one of gbr"),
    (["--model_params={not json"], "model_params", "a JSON object"),
    (["--model_params=[1, 2]"], "model_params", "a JSON object"),
    (['--model_params={"n_estimatorz": 5}'], "model_params", "unknown hyperparameter"),
    (['--model_params={"max_depth": -3}'], "model_params", "max_depth"),
    (["--window_size=1"], "window_size", ">= 2"),
    (["--window_size=3", "--test_periods=3"], "test_periods", "smaller than --window_size"),
    (["--window_size=x"], "window_size", "an integer >= 2"),
    (["--features=attr1,sales"], "features", "target"),
    (["--target=revenue"], "target", "a column of the source"),
    (["--features=attr1,attr9"], "features", "missing ['attr9']"),
    (["--query=SELECT nope FROM dataset.table"], "query", "DuckDB"),
])
def test_bad_parameters_fail_before_the_pipeline_starts(tmp_path, argv, parameter, allowed):
    with pytest.raises(ParameterError) as error:
        run.prepare([f"--output={tmp_path / 'out'}", *argv])
    assert error.value.name == parameter
    assert f"--{parameter}=" in str(error.value) and allowed in str(error.value)
    assert not (tmp_path / "out").exists()


def test_bad_parameter_exits_with_a_message(tmp_path, capsys):
    assert run.main([f"--output={tmp_path}", "--model=nope"]) == 2
    assert "--model='nope' is not valid: one of gbr" in capsys.readouterr().err


def test_unknown_flags_pass_through_to_beam():
    params, beam_args = parse_args(["--model=ridge", "--project=p", "--job_name=j", "--region=r"])
    assert params.model == "ridge"
    assert beam_args == ["--project=p", "--job_name=j", "--region=r"]
