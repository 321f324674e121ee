"""The statistical models (statsforecast behind pipeline.models.statistical), through the real pipeline."""

import numpy as np
import pandas as pd
import pytest
from statsforecast.models import SeasonalNaive, Theta

from pipeline.models import registry, statistical
from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from pipeline.stages.fit.train import train_and_predict
from pipeline.stages.prepare.windows import WindowPlan
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


@pytest.fixture(scope="module")
def side_by_side_run(tmp_path_factory):
    """naive, seasonal_naive, ets and ridge side by side on noisy seasonal rows, models saved, forecasts made."""
    root = tmp_path_factory.mktemp("side_by_side")
    rows = monthly_rows(noise=2.0, seed=3)
    future = rows.groupby("shop_id").tail(6).copy()
    rows = rows.drop(index=future.index)  # the last 6 months of each key become rows to forecast
    future["sales"] = np.nan
    pd.concat([rows, future]).to_parquet(root / "rows.parquet")
    summary = run_pipeline(root / "out", *monthly_args(root / "rows.parquet", "naive,seasonal_naive,ets,ridge"),
                           f"--model_dir={root / 'models'}", "--run_id=stat-1", "--forecast", "--interval_levels=80")
    return {"rows": rows, "out": root / "out", "models": root / "models", "summary": summary,
            "input": root / "rows.parquet"}


def test_ets_beats_naive_on_mase_with_noise(side_by_side_run):
    metrics = read_output(str(side_by_side_run["out"]), "metrics")
    mase = metrics.groupby("model")["mase"].mean()
    assert set(mase.index) == {"naive", "seasonal_naive", "ets", "ridge"}
    assert mase["ets"] < mase["naive"]
    summary = side_by_side_run["summary"]
    assert summary["model_comparison"]["select_metric"] == "mase"  # the default with several models
    assert sum(summary["model_comparison"]["keys_choosing"].values()) == 3
    # the out-of-sample comparison is in MASE too, and the report shows it in MASE (not RMSE)
    assert set(summary["model_comparison"]["out_of_sample"]["overall"]["mase"]) >= {"ets", "naive", "choice_auto"}
    assert "Models compared (MASE, out of sample)" in (side_by_side_run["out"] / "report.html").read_text()
    # the summary's seasonal naive baseline is the seasonal_naive model's own forecast, pooled the same way
    snaive = metrics[metrics["model"] == "seasonal_naive"]
    np.testing.assert_allclose(snaive["mase"], snaive["seasonal_naive_mase"], rtol=1e-12)


def test_statistical_models_forecast_with_conformal_bands(side_by_side_run):
    forecasts = read_output(str(side_by_side_run["out"]), "forecasts")
    assert len(forecasts) == 3 * 6 and np.isfinite(forecasts["predicted"]).all()
    assert set(forecasts["model"]) <= {"naive", "seasonal_naive", "ets", "ridge"}
    assert {"lower_80", "upper_80"} <= set(forecasts.columns)


def test_saved_statistical_models_reload_and_predict_the_same_forecasts(side_by_side_run):
    from pipeline.record import saved_models

    predictions = read_output(str(side_by_side_run["out"]), "predictions")
    rows = pd.read_parquet(side_by_side_run["input"])
    checked = 0
    for model in ("naive", "seasonal_naive", "ets"):
        for (key, start), expected in predictions[predictions["model"] == model].groupby(["shop_id", "window_start"]):
            again = saved_models.predict_window(str(side_by_side_run["models"] / model), "stat-1", key, start, rows,
                                                 str(side_by_side_run["out"]), model=model)
            expected = expected.sort_values("date", ignore_index=True)
            assert again["predicted"].to_numpy().tobytes() == expected["predicted"].to_numpy().tobytes()
            checked += 1
    assert checked == 3 * 2 * 3  # models x keys x windows (66 observed months: windows at 0 and 12)


def test_seasonal_naive_mase_is_zero_on_a_noise_free_season(tmp_path):
    # 48 months, one window per key: a season repeated exactly, one level lower in the first year (so that
    # the training periods' in-sample seasonal naive errs and MASE's scale is not 0)
    rows = monthly_rows(keys=2, noise=0.0).groupby("shop_id").head(48).reset_index(drop=True)
    season = np.array([3.0, 5, 9, 14, 20, 24, 22, 17, 12, 8, 5, 4])
    rows["sales"] = np.tile(season, 8) + np.where(np.arange(96) % 48 < 12, -2.0, 0.0)
    rows.to_parquet(tmp_path / "rows.parquet")
    summary = run_pipeline(tmp_path / "out", *monthly_args(tmp_path / "rows.parquet", "seasonal_naive"))
    metrics = read_output(str(tmp_path / "out"), "metrics")
    assert len(metrics) == 2 and (metrics["mase"] == 0).all() and (metrics["smape"] == 0).all()
    predictions = read_output(str(tmp_path / "out"), "predictions")
    assert (predictions["predicted"] == predictions["actual"]).all()
    assert (predictions["mase_scale"] == 2.0 * 12 / 24).all()  # 12 of the 24 in-sample seasonal pairs err by 2
    assert summary["scaled_overall"]["mase"] == {"model": 0.0, "seasonal_naive": 0.0}


def test_plan_only_counts_and_prices_statistical_fits(tmp_path):
    rows = monthly_rows()
    rows.to_parquet(tmp_path / "rows.parquet")
    document = run_pipeline(tmp_path / "out", *monthly_args(tmp_path / "rows.parquet", "theta,ets"), "--plan_only")
    assert document["fits_by_model"] == {"theta": 9, "ets": 9}
    assert set(document["cost_estimate"]["estimated_cpu_seconds_by_model"]) == {"theta", "ets"}


def test_summary_and_report_show_the_scale_free_metrics_against_seasonal_naive(side_by_side_run):
    summary = side_by_side_run["summary"]
    for name in ("mase", "smape", "wape"):
        by_period = summary[f"{name}_by_test_period"]
        assert set(by_period) == {"model", "seasonal_naive"} and len(by_period["model"]) == 24  # 2 windows x 12
        assert summary["scaled_overall"][name]["seasonal_naive"] > 0
    assert summary["season_length"] == "from each key's frequency (periods.SEASON_LENGTHS)"
    report = (side_by_side_run["out"] / "report.html").read_text()
    assert "Scale-free metrics vs seasonal naive" in report and "MASE seasonal naive" in report


def test_a_target_only_table_runs_with_statistical_models(tmp_path):
    rows = monthly_rows(keys=2)[["shop_id", "date", "sales"]]  # key, date, target: no period, no feature
    rows.to_parquet(tmp_path / "rows.parquet")
    summary = run_pipeline(tmp_path / "out", f"--input={tmp_path / 'rows.parquet'}", "--period=month", "--features=",
                           "--window_size=48", "--test_periods=12", "--window_period=12", "--model=theta,ets")
    assert summary["groups_trained"] == summary["groups_planned"] == 2 * 3 * 2
    ledger = read_output(str(tmp_path / "out"), "ledger")
    assert set(ledger["model"]) == {"theta", "ets"} and (ledger["status"] == "trained").all()
