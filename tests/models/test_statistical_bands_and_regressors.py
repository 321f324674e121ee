"""The statistical models' own prediction intervals (--interval_method=model) and ARIMA with exogenous
regressors (arimax), through the real pipeline."""

import numpy as np
import pandas as pd
import pytest
from statsforecast.models import AutoARIMA, AutoETS

from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from tests.helpers.pipeline_runs import read_output, run_pipeline
from tests.models.test_statistical import MONTHS, monthly_args, monthly_rows

TRAIN = 36  # months a window trains on (window 48, test 12)


def with_future(rows: pd.DataFrame, months: int = 6) -> pd.DataFrame:
    """The last `months` of each key become rows to forecast (empty target)."""
    future = rows.groupby("shop_id").tail(months).copy()
    future["sales"] = np.nan
    return pd.concat([rows.drop(index=future.index), future], ignore_index=True)


@pytest.fixture(scope="module")
def model_bands_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("model_bands")
    rows = with_future(monthly_rows(noise=2.0, seed=5))
    rows.to_parquet(root / "rows.parquet")
    summary = run_pipeline(root / "out", *monthly_args(root / "rows.parquet", "ets,ridge"), "--interval_levels=80,95",
                           "--interval_method=model", "--forecast", "--select=global", "--run_id=bands")
    return rows, root / "out", summary


def test_ets_bands_are_statsforecasts_own_in_every_window(model_bands_run):
    rows, out, summary = model_bands_run
    predictions = read_output(str(out), "predictions")
    ets = predictions[predictions["model"] == "ets"]
    assert (ets["interval_source"] == "model").all() and (ets["calibration_residuals"] == 0).all()
    checked = 0
    for (key, start), got in ets.groupby(["shop_id", "window_start"]):
        got = got.sort_values("date")
        series = rows[rows["shop_id"] == key].sort_values("date")
        history = series.loc[(series["month"] >= start) & (series["month"] < start + TRAIN), "sales"].to_numpy()
        expected = AutoETS(season_length=12).forecast(y=history, h=12, level=[80, 95])
        for level in (80, 95):
            np.testing.assert_allclose(got[f"lower_{level}"], expected[f"lo-{level}"], rtol=1e-9)
            np.testing.assert_allclose(got[f"upper_{level}"], expected[f"hi-{level}"], rtol=1e-9)
        checked += 1
    assert checked == 3 * 2  # keys x windows (66 observed months: windows at 0 and 12)
    # the regressor keeps its conformal bands: none in a key's first window (no earlier residual)
    ridge = predictions[predictions["model"] == "ridge"]
    assert (ridge["interval_source"] == "conformal").all()
    first = ridge["window_start"] == ridge["window_start"].min()
    assert ridge.loc[first, "lower_80"].isna().all() and ridge.loc[~first, "lower_80"].notna().all()


def test_model_bands_coverage_is_reported_per_model_with_their_source(model_bands_run):
    _, out, summary = model_bands_run
    intervals = summary["intervals"]
    assert intervals["interval_method"] == "model" and "statsforecast's own" in intervals["method"]
    assert intervals["source_rows"] == {"ets": {"model": 6 * 12}, "ridge": {"conformal": 6 * 12}}
    ets = intervals["coverage_out_of_sample"]["ets"]
    predictions = read_output(str(out), "predictions")
    rows = predictions[predictions["model"] == "ets"]
    for level in ("80", "95"):
        inside = ((rows["actual"] >= rows[f"lower_{level}"]) & (rows["actual"] <= rows[f"upper_{level}"])).mean()
        assert ets[level]["rows"] == len(rows) and ets[level]["overall"] == pytest.approx(inside)
    metrics = read_output(str(out), "metrics")
    assert metrics.loc[metrics["model"] == "ets", "coverage_80"].notna().all()  # the first windows too
    assert "own prediction intervals (mean +/- z" in (out / "report.html").read_text()


def test_a_forecast_by_ets_carries_its_own_bands(model_bands_run):
    rows, out, summary = model_bands_run
    forecasts = read_output(str(out), "forecasts")
    assert len(forecasts) == 3 * 6
    by_ets = forecasts[forecasts["model"] == "ets"]
    assert len(by_ets) and (by_ets["interval_source"] == "model").all()
    for key, got in by_ets.groupby("shop_id"):
        observed = rows[(rows["shop_id"] == key) & rows["sales"].notna()].sort_values("date")
        expected = AutoETS(season_length=12).forecast(y=observed["sales"].to_numpy()[-TRAIN:], h=6, level=[80])
        got = got.sort_values("date")
        np.testing.assert_allclose(got["predicted"], expected["mean"], rtol=1e-9)
        np.testing.assert_allclose(got["lower_80"], expected["lo-80"], rtol=1e-9)
    assert (forecasts.loc[forecasts["model"] == "ridge", "interval_source"] == "conformal").all()


def test_model_intervals_need_levels():
    with pytest.raises(ParameterError) as error:
        parse_args(["--model=ets", "--interval_method=model"])
    assert error.value.name == "interval_method"


def regressor_rows(keys: int = 3, seed: int = 0) -> pd.DataFrame:
    """Monthly rows driven by a known regressor (a promotion flag and its size), plus a little noise."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(keys):
        dates = pd.date_range("2015-01-01", periods=MONTHS, freq="MS")
        promotion = rng.uniform(0, 1, MONTHS) * (rng.uniform(size=MONTHS) < 0.4)
        sales = 100 + 10 * k + 40 * promotion + rng.normal(scale=1.0, size=MONTHS)
        frames.append(pd.DataFrame({"shop_id": f"S{k}", "date": dates.date, "month": dates.year * 12 + dates.month - 1,
                                    "sales": sales, "attr1": promotion}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def regressor_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("arimax")
    rows = with_future(regressor_rows())
    rows.to_parquet(root / "rows.parquet")
    summary = run_pipeline(root / "out", *monthly_args(root / "rows.parquet", "arima,arimax"), "--forecast",
                           f"--model_dir={root / 'models'}", "--run_id=arimax")
    return {"rows": rows, "out": root / "out", "models": root / "models", "summary": summary,
            "input": root / "rows.parquet"}


def test_arima_with_the_regressor_beats_arima_without_on_mase(regressor_run):
    metrics = read_output(str(regressor_run["out"]), "metrics")
    assert len(metrics) == 2 * 3 * 2  # models x keys x windows
    mase = metrics.groupby("model")["mase"].mean()
    assert mase["arimax"] < 0.5 * mase["arima"], mase.to_dict()
    selection = read_output(str(regressor_run["out"]), "selection")
    assert set(selection.loc[selection["chosen"], "model"]) == {"arimax"}


def test_arimax_equals_statsforecast_autoarima_with_x(regressor_run):
    rows, out = regressor_run["rows"], regressor_run["out"]
    predictions = read_output(str(out), "predictions")
    got = predictions[(predictions["model"] == "arimax") & (predictions["shop_id"] == "S1")
                      & (predictions["window_start"] == predictions["window_start"].min())].sort_values("date")
    series = rows[rows["shop_id"] == "S1"].sort_values("date")
    start = int(got["window_start"].iloc[0])
    train = series[(series["month"] >= start) & (series["month"] < start + TRAIN)]
    test = series[(series["month"] >= start + TRAIN) & (series["month"] < start + TRAIN + 12)]
    model = AutoARIMA(season_length=12).fit(train["sales"].to_numpy(), X=train[["attr1"]].to_numpy())
    expected = model.predict(h=12, X=test[["attr1"]].to_numpy())["mean"]
    np.testing.assert_allclose(got["predicted"].to_numpy(), np.asarray(expected), rtol=1e-9)


def test_arimax_forecasts_with_the_future_regressors_and_reloads(regressor_run):
    from pipeline.record import saved_models

    forecasts = read_output(str(regressor_run["out"]), "forecasts")
    assert len(forecasts) == 3 * 6 and set(forecasts["model"]) == {"arimax"}
    rows = regressor_run["rows"]
    future = rows[rows["sales"].isna()].set_index(["shop_id", "date"])
    # a promotion month is forecast about 40 x its size above a month without one (the regressor is used)
    joined = forecasts.assign(date=pd.to_datetime(forecasts["date"]).dt.date).join(future["attr1"], on=["shop_id", "date"])
    slope = np.polyfit(joined["attr1"], joined["predicted"] - joined.groupby("shop_id")["predicted"].transform("min"), 1)[0]
    assert 30 < slope < 50
    source = pd.read_parquet(regressor_run["input"])
    predictions = read_output(str(regressor_run["out"]), "predictions")
    for (key, start), expected in predictions[predictions["model"] == "arimax"].groupby(["shop_id", "window_start"]):
        again = saved_models.predict_window(str(regressor_run["models"] / "arimax"), "arimax", key, start, source,
                                             str(regressor_run["out"]), model="arimax")
        expected = expected.sort_values("date", ignore_index=True)
        assert again["predicted"].to_numpy().tobytes() == expected["predicted"].to_numpy().tobytes()


def test_arimax_needs_a_regressor_known_in_the_future():
    with pytest.raises(ParameterError) as error:
        parse_args(["--model=arimax", "--features=", "--lags=1", "--period=month"])
    assert error.value.name == "features"
    parse_args(["--model=arimax", "--features=", "--calendar_features=month", "--period=month",
                "--time_column=period"])


def test_a_statistical_model_takes_a_hyperparameter_search(tmp_path):
    # trend + a 12-month season: additive error, trend and season (AAA) beats the model with neither (ANN)
    rows = monthly_rows(noise=0.5, seed=2)
    rows.to_parquet(tmp_path / "rows.parquet")
    summary = run_pipeline(tmp_path / "out", *monthly_args(tmp_path / "rows.parquet", "ets"),
                           '--param_grid={"model": ["ANN", "AAA"]}', "--validation_periods=12")
    assert summary["groups_trained"] == summary["groups_planned"] == 9
    search = read_output(str(tmp_path / "out"), "search")
    assert len(search) == 9 * 2 and search["validation_rmse"].notna().all()
    chosen = search[search["chosen"]]
    assert set(chosen["model_params"]) == {'{"model": "AAA"}'}
    predictions = read_output(str(tmp_path / "out"), "predictions")
    got = predictions[(predictions["shop_id"] == "S0")].sort_values(["window_start", "date"]).head(12)
    start = int(got["window_start"].iloc[0])
    series = rows[rows["shop_id"] == "S0"].sort_values("date")
    history = series.loc[(series["month"] >= start) & (series["month"] < start + TRAIN), "sales"].to_numpy()
    expected = AutoETS(season_length=12, model="AAA").forecast(y=history, h=12)["mean"]
    np.testing.assert_allclose(got["predicted"].to_numpy(), expected, rtol=1e-9)
