"""Combinations as candidates (--model=ridge,gbr,ridge+gbr): a+b is the mean of a and b fitted apart, bit
for bit, in predictions, forecasts and their intervals, and the saved combination reloads and predicts the
same; a combination that cannot be built is refused before work."""

import numpy as np
import pandas as pd
import pytest

from pipeline.io.outputs import artifacts
from pipeline.params.declare import ParameterError
from pipeline.record import saved_models
from pipeline.run import parse_args
from pipeline.stages.decide import compare
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline
from tests.stages.decide.test_forecast import future

ORDER = ["shop_id", "window_start", "date"]
COMBINED = "ridge+gbr"


@pytest.fixture(scope="module")
def combined_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("combine")
    rows = pd.concat([make_rows({"A": [2001, 2002, 2003, 2004, 2005], "B": [2001, 2002, 2003, 2004, 2005]}, days=25),
                      future("A", 2006), future("B", 2006)], ignore_index=True)
    path = base / "rows.parquet"
    rows.to_parquet(path, index=False)
    summary = run_pipeline(base / "out", f"--input={path}", f"--model=ridge,gbr,{COMBINED}", "--run_id=comb",
                           "--forecast=true", "--interval_levels=50",
                           '--model_params={"gbr": {"n_estimators": 30}, "ridge+gbr": {"gbr": {"n_estimators": 30}}}',
                           f"--model_dir={base / 'models'}")
    return base, rows, summary


def _by_model(frame: pd.DataFrame, model: str, order=ORDER) -> pd.DataFrame:
    return frame[frame["model"] == model].sort_values(order, ignore_index=True)


def test_a_combination_is_the_mean_of_its_members_fitted_apart_bit_for_bit(combined_run):
    base, _, summary = combined_run
    predictions = read_output(str(base / "out"), "predictions")
    ridge, gbr, both = (_by_model(predictions, m) for m in ("ridge", "gbr", COMBINED))
    assert len(both) == len(ridge) == len(gbr) > 0
    assert both[ORDER].equals(ridge[ORDER])
    expected = (ridge["predicted"].to_numpy() + gbr["predicted"].to_numpy()) / 2
    assert np.array_equal(both["predicted"].to_numpy(), expected)
    assert not np.array_equal(expected, ridge["predicted"].to_numpy())  # the members differ: a real mean
    # Its own residuals calibrate its own bands (earlier windows of the combination, not of a member).
    banded = both.dropna(subset=["upper_50"])
    assert len(banded) and not np.allclose(banded["upper_50"] - banded["predicted"],
                                           _by_model(predictions, "ridge").loc[banded.index, "upper_50"]
                                           - ridge.loc[banded.index, "predicted"])
    ledger = read_output(str(base / "out"), "ledger")
    assert set(ledger.loc[ledger["model"] == COMBINED, "status"]) == {"trained"}
    assert summary["model_comparison"]["models"] == ["ridge", "gbr", COMBINED]
    assert set(read_output(str(base / "out"), "selection")["model"]) == {"ridge", "gbr", COMBINED}


def test_a_chosen_combination_forecasts_the_mean_and_its_saved_model_repredicts(combined_run):
    base, rows, _ = combined_run
    selection = read_output(str(base / "out"), "selection")
    forecasts = read_output(str(base / "out"), "forecasts").set_index(["shop_id", "date"])
    chosen = selection[selection["chosen"]].set_index("shop_id")["model"]
    assert set(forecasts.reset_index()["shop_id"]) == {"A", "B"}
    for key, model in chosen.items():
        assert set(forecasts.loc[key, "model"]) == {model}
    # The saved combination of a backtest window reloads and predicts what the run predicted.
    model_dir = str(base / "models" / artifacts.encode_key(COMBINED))
    again = saved_models.predict_window(model_dir, "comb", "A", 2002, rows, str(base / "out"), model=COMBINED)
    predictions = read_output(str(base / "out"), "predictions")
    ran = predictions[(predictions["model"] == COMBINED) & (predictions["shop_id"] == "A")
                      & (predictions["window_start"] == 2002)].sort_values("date")
    assert np.array_equal(again.sort_values("date")["predicted"].to_numpy(), ran["predicted"].to_numpy())


def test_a_combination_alone_is_one_candidate():
    params = parse_args([f"--model={COMBINED}", '--model_params={"ridge": {"alpha": 2.0}}'])[0]
    assert compare.model_names(params) == [COMBINED] and not compare.is_enabled(params)
    members = compare.per_member(params)
    assert [(m.model, m.model_params) for m in members] == [("ridge", {"alpha": 2.0}), ("gbr", {})]


@pytest.mark.parametrize("argv, name", [
    (["--model=ridge+ridge"], "model"),
    (["--model=ridge+nope"], "model"),
    ([f"--model={COMBINED}", '--param_grid={"alpha": [1, 2]}'], "param_grid"),
    ([f"--model=ridge,{COMBINED}", '--param_grid={"ridge+gbr": {"alpha": [1, 2]}}'], "param_grid"),
    ([f"--model={COMBINED}", '--model_params={"ridge": {"max_depth": 2}}'], "model_params"),  # per member
])
def test_refused_before_work_naming_the_parameter(argv, name):
    with pytest.raises(ParameterError) as error:
        parse_args(argv)
    assert error.value.name == name
