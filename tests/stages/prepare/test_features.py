"""Feature generation: calendar features, lags and rolling means against a pandas reference, the
leakage rule on every window, and the built-in leakage check failing a deliberately leaky feature."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from pipeline.models import custom_model
from pipeline.stages.prepare import features, target_history
from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from pipeline.stages.prepare.windows import WindowPlan
from tests.helpers.pipeline_runs import make_rows, run_pipeline, sorted_predictions

LAGS, SPANS = (1, 7, 30), (3, 10)


def params_for(*args):
    return parse_args(["--lag_days=" + ",".join(map(str, LAGS)),
                       "--rolling_mean_days=" + ",".join(map(str, SPANS)), *args])[0]


def contiguous_rows(keys, periods=(2001, 2002, 2003, 2004), days=40, seed=0):
    """Daily rows without gaps; each period is a run of `days` consecutive days (so a feature that
    looks one day ahead crosses from the last training day into the test period)."""
    data = make_rows({key: list(periods) for key in keys}, days=days, seed=seed)
    first = pd.Timestamp(f"{periods[0]}-01-01")
    offset = (data["year"] - periods[0]) * days + data.groupby(["shop_id", "year"]).cumcount()
    return data.assign(date=(first + pd.to_timedelta(offset, unit="D")).dt.date)


def key_frame(seed=0):
    """One key, four periods of 40 consecutive days, with a few dates missing."""
    data = contiguous_rows(["A"], seed=seed).drop(index=[5, 6, 50, 119]).drop(columns="shop_id")
    return data.assign(date=pd.to_datetime(data["date"])).reset_index(drop=True)


def reference(frame, known_until=None):
    """Plain pandas, row by row: lag = value k days earlier; rolling mean of the known values in
    [d - w days, d - 1 day]; unknown -> NaN. With `known_until`, values from that year on are unknown."""
    known = frame if known_until is None else frame[frame["year"] < known_until]
    series = known.set_index("date")["sales"]
    out = {}
    for k in LAGS:
        out[f"lag_{k}"] = [series.get(d - pd.Timedelta(days=k), np.nan) for d in frame["date"]]
    for w in SPANS:
        out[f"rolling_mean_{w}"] = [series[(series.index >= d - pd.Timedelta(days=w)) & (series.index < d)].mean()
                                    for d in frame["date"]]
    return pd.DataFrame(out)


def test_lags_and_rolling_means_match_pandas():
    params = params_for()
    spec = features.FeatureSpec.from_params(params)
    frame = key_frame()
    got = features.add_target_features(frame, spec, params)
    expected = reference(frame)
    pd.testing.assert_frame_equal(got[spec.target_names], expected[spec.target_names], check_dtype=False)
    # and pandas' own time-based rolling window where every row is known
    rolled = frame.set_index("date")["sales"].rolling("10D", closed="left").mean()
    np.testing.assert_allclose(got["rolling_mean_10"], rolled.to_numpy())
    # known at the test start 2003: rows from 2003 on see no target value from 2003 on
    window = (frame["year"] <= 2003).to_numpy()
    as_of = features.known_at(got.loc[window], 2003, params)
    test_rows = (frame["year"] == 2003).to_numpy()
    masked = reference(frame, known_until=2003)
    train_rows = (frame["year"] < 2003).to_numpy()
    np.testing.assert_allclose(as_of.loc[test_rows[window], spec.target_names],
                               masked.loc[test_rows, spec.target_names])
    np.testing.assert_allclose(as_of.loc[train_rows[window], spec.target_names],
                               expected.loc[train_rows, spec.target_names])


def test_every_row_uses_only_earlier_dates():
    params = params_for()
    spec = features.FeatureSpec.from_params(params)
    frame = key_frame(seed=1)
    got = features.add_target_features(frame, spec, params)[spec.target_names]
    for i in range(len(frame)):
        future_changed = frame.assign(sales=np.where(frame["date"] >= frame.loc[i, "date"], 1e6, frame["sales"]))
        again = features.add_target_features(future_changed, spec, params)[spec.target_names]
        np.testing.assert_allclose(again.loc[i], got.loc[i], err_msg=f"row {i} depends on its own or later dates")


def test_calendar_features_and_bundled_holidays():
    dates = pd.Series(pd.to_datetime(["2021-07-14", "2021-05-13", "2021-05-24", "2021-04-05", "2021-04-06",
                                      "2021-11-25"]))
    spec = features.FeatureSpec(calendar=("day_of_week", "day_of_year", "month", "holiday"))
    got = features.calendar_features(dates, spec)
    assert list(got["holiday"]) == [1, 1, 1, 1, 0, 0]  # Bastille day, Ascension, Whit and Easter Monday
    assert list(got["day_of_week"]) == [2, 3, 0, 0, 1, 3]
    assert list(got["day_of_year"]) == list(dates.dt.day_of_year) and list(got["month"]) == [7, 5, 5, 4, 4, 11]
    us = features.calendar_features(dates, dataclasses.replace(spec, holiday_calendar="us"))
    assert list(us["holiday"]) == [0, 0, 0, 0, 0, 1]  # Thanksgiving


def centered_rolling_mean(positions, values, feature):
    """Deliberately leaky: a centered window also averages the days after each date."""
    if feature.kind != "rolling_mean":
        return target_history.compute(positions, values, feature)
    series = pd.Series(values, index=positions).reindex(range(positions.min(), positions.max() + 1))
    mean = series.rolling(feature.size, center=True, min_periods=1).mean().reindex(positions).to_numpy()
    return mean, np.ones(len(positions))


def test_leakage_check_accepts_the_features_and_fails_a_leaky_one(monkeypatch):
    params = params_for("--window_size=3")
    spec = features.FeatureSpec.from_params(params)
    plan = WindowPlan.from_params(params)
    frame = features.add_target_features(key_frame(), spec, params)
    assert features.check_no_leakage("A", frame, spec, params, plan) == 6  # test starts 2001 - 2006

    monkeypatch.setitem(features.TARGET_FEATURES, "compute", centered_rolling_mean)
    leaky = features.add_target_features(key_frame(), spec, params)
    with pytest.raises(features.LeakageError, match="rolling_mean_3 of key 'A' uses target values at or after"):
        features.check_no_leakage("A", leaky, spec, params, plan)


def test_pipeline_fails_a_leaky_feature(tmp_path, write_parquet, monkeypatch):
    monkeypatch.setitem(features.TARGET_FEATURES, "compute", centered_rolling_mean)
    data = contiguous_rows(["A"], periods=(2001, 2002, 2003), days=20)
    with pytest.raises(Exception, match="LeakageError|uses target values at or after"):
        run_pipeline(tmp_path / "out", f"--input={write_parquet(data)}", "--model=ridge",
                     "--rolling_mean_days=3", "--check_leakage=true")


def test_test_rows_see_only_values_before_the_test_start_on_every_window(tmp_path, write_parquet, monkeypatch):
    """The model echoes a feature: the predictions are exactly what each test row was given."""
    monkeypatch.setenv(custom_model.ALLOW_LIST_ENV, "tests.helpers.user_models")
    data = contiguous_rows(["A", "B"], days=30, seed=3)
    path = write_parquet(data)
    frame = data.assign(date=pd.to_datetime(data["date"]))
    for column in ("lag_7", "rolling_mean_10"):
        out = tmp_path / column
        summary = run_pipeline(out, f"--input={path}", "--model=tests.helpers.user_models.probes:echo_feature",
                               f'--model_params={{"column": "{column}", "missing": -1.0}}', "--lag_days=7,40",
                               "--rolling_mean_days=10", "--calendar_features=day_of_week,holiday",
                               "--check_leakage=true")
        assert summary["groups_failed"] == 0 and summary["groups_trained"] == 4
        predictions = sorted_predictions(out)
        for (shop, start), got in predictions.groupby(["shop_id", "window_start"]):
            test_start = start + 2
            shop_rows = frame[frame["shop_id"] == shop].reset_index(drop=True)
            series = shop_rows[shop_rows["year"] < test_start].set_index("date")["sales"]
            dates = pd.to_datetime(got["date"])
            if column.startswith("lag_"):
                expected = series.reindex(dates - pd.Timedelta(days=int(column[4:]))).fillna(-1.0).to_numpy()
            else:
                expected = [series[(series.index >= d - pd.Timedelta(days=10)) & (series.index < d)].mean()
                            for d in dates]
                expected = np.nan_to_num(np.array(expected, dtype=float), nan=-1.0)
            np.testing.assert_allclose(got["predicted"], expected, err_msg=f"{column} {shop} {start}")
            # known, then masked: a user function sees no prediction (no recursion) and no actual
            assert (expected[:7] != -1).all() and (expected[10:] == -1).all()
            assert (got["year"] >= test_start).all()


def test_feature_parameters_fail_before_work():
    with pytest.raises(ParameterError, match="calendar_features"):
        parse_args(["--calendar_features=day_of_week,weekday"])
    with pytest.raises(ParameterError, match="lag_days"):
        parse_args(["--lag_days=7,0"])
    with pytest.raises(ParameterError, match="lag_days"):
        parse_args(["--lag_days=7,7"])
    with pytest.raises(ParameterError, match="generated features"):
        parse_args(["--features=attr1,lag_7", "--lag_days=7"])
