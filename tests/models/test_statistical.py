"""The statistical models (statsforecast behind pipeline.models.statistical), through the real pipeline."""

import numpy as np
import pandas as pd
import pytest
from statsforecast.models import SeasonalNaive, Theta

from pipeline.models import registry, statistical
from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from pipeline.stages.train import train_and_predict
from pipeline.stages.windows import WindowPlan
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline

MONTHS = 72


def monthly_rows(keys: int = 3, noise: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Monthly rows dated the 1st: trend + a 12-month season (+ noise), a month index as the period."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(keys):
        dates = pd.date_range("2015-01-01", periods=MONTHS, freq="MS")
        t = np.arange(MONTHS)
        sales = 100 + 10 * k + 0.5 * t + 8 * np.sin(2 * np.pi * t / 12) + rng.normal(scale=noise, size=MONTHS)
        frames.append(pd.DataFrame({"shop_id": f"S{k}", "date": dates.date, "month": dates.year * 12 + dates.month - 1,
                                    "sales": sales, "attr1": rng.normal(size=MONTHS)}))
    return pd.concat(frames, ignore_index=True)


def monthly_args(path, model: str) -> list[str]:
    return [f"--input={path}", "--time_column=month", "--features=attr1", "--window_size=48", "--test_periods=12",
            "--window_period=12", f"--model={model}"]


@pytest.fixture(scope="module")
def theta_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("theta")
    rows = monthly_rows()
    rows.to_parquet(root / "rows.parquet")
    summary = run_pipeline(root / "out", *monthly_args(root / "rows.parquet", "theta"))
    return rows, root / "out", summary


def test_theta_through_the_pipeline_equals_statsforecast_theta(theta_run):
    rows, out, summary = theta_run
    predictions = read_output(str(out), "predictions")
    assert summary["groups_trained"] == summary["groups_planned"] == 9
    for (key, start), got in predictions.groupby(["shop_id", "window_start"]):
        got = got.sort_values("date")
        series = rows[rows["shop_id"] == key].sort_values("date")
        history = series.loc[(series["month"] >= start) & (series["month"] < start + 36), "sales"].to_numpy()
        expected = Theta(season_length=12).forecast(y=history, h=12)["mean"]
        np.testing.assert_allclose(got["predicted"].to_numpy(), expected, rtol=1e-12, atol=1e-9)
        assert (got["model"] == "theta").all()


def test_seasonal_naive_predicts_a_noise_free_season_exactly():
    rows = monthly_rows(keys=1, noise=0.0)
    rows["sales"] = 50 + 8 * np.sin(2 * np.pi * np.arange(len(rows)) / 12)  # no trend, no noise
    rows["date"] = rows["date"].astype("datetime64[ns]")
    params, _ = parse_args(["--model=seasonal_naive", "--run_id=r1", "--time_column=month", "--features=attr1",
                            "--window_size=48", "--test_periods=12"])
    start = int(rows["month"].min())
    window = rows[rows["month"] < start + 48].reset_index(drop=True)
    result = train_and_predict("S0", start, window, params, WindowPlan(48, 12, 12))
    assert result.ledger["status"] == "trained", result.ledger
    np.testing.assert_allclose(result.predictions["predicted"], result.predictions["actual"], atol=1e-9)
    history = window["sales"].to_numpy()[:36]
    np.testing.assert_allclose(result.predictions["predicted"],
                               SeasonalNaive(season_length=12).forecast(y=history, h=12)["mean"])


def test_a_history_with_missing_steps_is_skipped_as_irregular_series():
    # 40 daily rows in each yearly period: the 325 days of 2001 between the training rows are missing
    data = make_rows({"A": [2001, 2002, 2003]}, days=40, seed=1)
    data["date"] = data["date"].astype("datetime64[ns]")
    params, _ = parse_args(["--model=ets", "--run_id=r1"])
    result = train_and_predict("A", 2001, data, params, WindowPlan(3, 1, 1))
    assert result.ledger["status"] == "skipped"
    assert result.ledger["reason"] == statistical.IRREGULAR
    assert "325 missing step(s)" in result.ledger["error_message"]


def test_horizon_counts_steps_of_the_frequency_not_rows():
    model = statistical.Naive(frequency="M").fit(np.arange(10), np.arange(10.0))
    assert model.horizons(np.array([10, 12])).tolist() == [1, 3]
    with pytest.raises(ValueError, match="not after the last training step"):
        model.predict(np.array([9]))


def test_statistical_models_need_no_features_and_check_their_hyperparameters():
    assert not registry.needs_features("theta") and registry.needs_features("gbr")
    registry.check_model("ets", {"model": "ANN"})
    with pytest.raises(ParameterError, match="unknown hyperparameter"):
        registry.check_model("ets", {"n_estimators": 3})
    with pytest.raises(ParameterError, match="model_params"):
        registry.check_model("ets", {"model": "QQQ"})
