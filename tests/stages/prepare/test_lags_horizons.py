"""Lags and rolling means in steps of the key's frequency (calendar-aware, gaps unknown), unknown values
missing or imputed and counted, and the recursive horizon: on AR(1) series with an 18-month horizon it
beats the old rule (an unknown lag is 0.0) at every step, and no test row sees an actual from its test
start on."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from pipeline.models import registry
from pipeline.run import parse_args
from pipeline.stages.prepare import features
from pipeline.stages.fit import train
from pipeline.stages.fit.split import split_at
from pipeline.stages.prepare.windows import WindowPlan
from tests.helpers.pipeline_runs import run_pipeline

MONTHLY = ("--time_column=month_index", "--features=attr1")


def monthly_rows(keys=("A",), months=36, first="2019-01-01", seed=0, phi=0.0, level=10.0, day=1):
    """Monthly rows (dated `day` of each month), key, month index, date, sales, attr1; sales AR(1) around
    `level` with coefficient `phi`."""
    rng = np.random.default_rng(seed)
    frames = []
    for key in keys:
        dates = pd.date_range(first, periods=months, freq="MS") + pd.Timedelta(days=day - 1)
        noise, values = rng.normal(size=months), np.empty(months)
        values[0] = noise[0]
        for t in range(1, months):
            values[t] = phi * values[t - 1] + noise[t]
        frames.append(pd.DataFrame({"shop_id": key, "month_index": dates.year * 12 + dates.month - 1,
                                    "date": dates.date, "sales": level + values,
                                    "attr1": rng.normal(size=months)}))
    return pd.concat(frames, ignore_index=True)


def key_features(frame, *args):
    params = parse_args([*MONTHLY, *args])[0]
    spec = features.FeatureSpec.from_params(params)
    return features.add_target_features(frame.drop(columns="shop_id"), spec, params), params


def test_lag_in_months_is_calendar_aware_and_a_missing_month_is_unknown():
    data = monthly_rows(months=36, day=15)  # 2019-01-15 .. 2021-12-15: gaps of 28 to 31 days
    data = data[data["date"] != pd.Timestamp("2020-02-15").date()].reset_index(drop=True)
    got, _ = key_features(data, "--lags=1,12", "--rolling_means=3")
    by_date = got.set_index(pd.to_datetime(got["date"]))
    sales = by_date["sales"]
    assert by_date.loc["2021-03-15", "lag_12"] == sales["2020-03-15"]
    assert by_date.loc["2021-03-15", "lag_1"] == sales["2021-02-15"]
    assert np.isnan(by_date.loc["2021-02-15", "lag_12"])  # 2020-02 is missing: unknown, not 2020-01's value
    assert np.isnan(by_date.loc["2020-03-15", "lag_1"])
    assert by_date.loc["2020-04-15", "rolling_mean_3"] == pytest.approx(sales[["2020-01-15", "2020-03-15"]].mean())
    assert np.isnan(by_date["lag_12"].iloc[:12]).all()  # before the key's first row: unknown, not 0.0


def test_daily_rows_keep_lags_in_days():
    data = monthly_rows(months=3)
    got, _ = key_features(data, "--lag_days=31")  # 2019-03-01 minus 31 days is 2019-01-29: no row
    assert np.isnan(got["lag_31"].iloc[[0, 2]]).all() and got["lag_31"].iloc[1] == got["sales"].iloc[0]
    got, _ = key_features(data, "--lag_days=28")  # 2019-03-01 minus 28 days is 2019-02-01
    assert got["lag_28"].iloc[2] == got["sales"].iloc[1] and np.isnan(got["lag_28"].iloc[:2]).all()


def window_split(model):
    data = monthly_rows(months=30, seed=4)
    frame, params = key_features(data, "--lags=1,12", "--window_size=30", "--test_periods=6", f"--model={model}")
    cutoff = int(frame["month_index"].iloc[24])
    return split_at(frame, cutoff, params), params


def test_unknown_values_are_missing_for_hist_gbr_and_imputed_with_the_training_mean_for_ridge():
    split, params = window_split("hist_gbr")
    columns = features.model_columns(params)
    x_train, _, test = split.arrays(columns, "sales", impute=False)
    lag_12 = columns.index("lag_12")
    assert np.isnan(x_train[:12, lag_12]).all() and not np.isnan(x_train[12:, lag_12]).any()
    seen = []
    test(lambda matrix: seen.append(matrix.copy()) or np.zeros(len(matrix)))
    assert not np.isnan(np.vstack(seen)).any()  # test rows: known actuals or earlier predictions

    x_imputed, _, _ = split.arrays(columns, "sales", impute=True)
    np.testing.assert_allclose(x_imputed[:12, lag_12], x_train[12:, lag_12].mean())
    assert split.unknown_values(columns) == 12 + 1  # lag_12 of the first 12 rows, lag_1 of the first

    # and counted in the run's summary for ridge, not for hist_gbr
    for model, imputed in (("ridge", True), ("hist_gbr", False)):
        summary = run_model(model)
        assert summary["groups_trained"] == 4 and summary["groups_failed"] == 0
        assert (summary["feature_values_imputed"] > 0) is imputed
        assert summary["frequency"] == {"given": None, "keys_by_frequency": {"M": 2}, "most_keys": "M"}


def run_model(model, output=None):
    path = run_model.input
    return run_pipeline(output or (run_model.root / model), f"--input={path}", *MONTHLY, f"--model={model}",
                        "--lags=1,2,12", "--rolling_means=3", "--window_size=36", "--test_periods=6",
                        "--check_leakage=true")


@pytest.fixture(autouse=True)
def _inputs(tmp_path, write_parquet):
    run_model.input = write_parquet(monthly_rows(keys=("A", "B"), months=37, seed=2, phi=0.8))
    run_model.root = tmp_path


def test_test_rows_see_no_actual_at_or_after_the_test_start():
    data = monthly_rows(months=40, seed=6, phi=0.8)
    frame, params = key_features(data, "--lags=1,2,12", "--rolling_means=3", "--window_size=36",
                                 "--test_periods=18", "--model=ridge")
    plan = WindowPlan.from_params(params)
    assert features.check_no_leakage("A", frame, features.FeatureSpec.from_params(params), params, plan) > 0
    start = int(frame["month_index"].iloc[0])
    window = frame[frame["month_index"] <= plan.end_of(start)].reset_index(drop=True)
    result = train.train_and_predict("A", start, window, params, plan)
    # every actual from the test start on changed, the features rebuilt from the changed rows
    later = data["month_index"] >= plan.test_start(start)
    changed, _ = key_features(data.assign(sales=data["sales"].where(~later, 1e6)), "--lags=1,2,12",
                              "--rolling_means=3", "--window_size=36", "--test_periods=18", "--model=ridge")
    again = train.train_and_predict("A", start, changed[changed["month_index"] <= plan.end_of(start)]
                                    .reset_index(drop=True), params, plan)
    assert result.ledger["status"] == again.ledger["status"] == "trained"
    assert (again.predictions["actual"] == 1e6).all()
    np.testing.assert_allclose(result.predictions["predicted"], again.predictions["predicted"], rtol=1e-9)


def test_recursive_horizon_beats_unknown_lags_as_zero_at_every_step():
    """200 AR(1) series (phi 0.8 around 50), 60 months each, one window: 42 training months, 18 test months."""
    horizon = 18
    data = monthly_rows(keys=[f"k{i}" for i in range(200)], months=60, seed=11, phi=0.8, level=50.0)
    errors_recursive, errors_zero = np.zeros((200, horizon)), np.zeros((200, horizon))
    for i, (key, rows) in enumerate(data.groupby("shop_id", sort=False)):
        frame, params = key_features(rows, "--lags=1,2", "--rolling_means=3", "--window_size=60",
                                     f"--test_periods={horizon}", "--model=ridge")
        plan = WindowPlan.from_params(params)
        start = int(frame["month_index"].iloc[0])
        result = train.train_and_predict(key, start, frame, params, plan)
        actual = result.predictions["actual"].to_numpy()
        errors_recursive[i] = result.predictions["predicted"].to_numpy() - actual
        # today's rule: the same ridge, every test-row feature as known at the test start, unknown = 0.0
        split = split_at(frame, plan.test_start(start), params)
        columns = features.model_columns(params)
        x_train, y_train, _ = split.arrays(columns, "sales")
        known = split.test_as_known()[columns].to_numpy(dtype=float)
        zero = Ridge().fit(x_train, y_train).predict(np.nan_to_num(known, nan=0.0))
        errors_zero[i] = zero - actual
    rmse_recursive = np.sqrt((errors_recursive ** 2).mean(axis=0))
    rmse_zero = np.sqrt((errors_zero ** 2).mean(axis=0))
    assert (rmse_recursive < rmse_zero).all(), (rmse_recursive, rmse_zero)
    assert rmse_recursive[-1] < 2.5  # about the series' own spread (1 / sqrt(1 - 0.8^2) = 1.67)


def test_ridge_recursion_without_input_checks_predicts_what_its_predict_would():
    """registry.linear_predict (X @ coef_.T + intercept_, no scikit-learn checks per recursive call) gives
    the recursion the very numbers Ridge.predict gives it."""
    data = monthly_rows(months=48, seed=4, phi=0.8)
    frame, params = key_features(data, "--lags=1,2,12", "--rolling_means=3", "--window_size=36",
                                 "--test_periods=12", "--model=ridge")
    plan = WindowPlan.from_params(params)
    start = int(frame["month_index"].iloc[0])
    window = frame[frame["month_index"] <= plan.end_of(start)].reset_index(drop=True)
    split = split_at(window, plan.test_start(start), params)
    x_train, y_train, x_test = split.arrays(features.model_columns(params), "sales")
    fitted = Ridge().fit(x_train, y_train)
    expected = x_test(fitted.predict)
    assert callable(x_test) and len(np.unique(x_test.recursion.generation)) > 1  # several recursive calls
    result = train.train_and_predict("A", start, window, params, plan)
    assert np.array_equal(result.predictions["predicted"].to_numpy(), expected)
    matrix = np.asfortranarray(np.random.default_rng(0).normal(size=(7, x_train.shape[1])))
    assert np.array_equal(registry.linear_predict(fitted)(matrix), fitted.predict(matrix))
