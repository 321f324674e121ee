"""Periods derived from the date (--period), readable period labels on every output, yyyymm periods
refused, and a table with no feature column (issue 21 §1)."""

import numpy as np
import pandas as pd
import pytest

from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from pipeline.utils import periods
from tests.helpers.pipeline_runs import LINEAGE_COLUMNS, make_rows, read_output, run_pipeline

OUTPUTS = ("predictions", "metrics", "ledger")


def _frames(out) -> dict[str, pd.DataFrame]:
    """Each output without its lineage and timing columns (which differ between any two runs), in a stable
    order."""
    frames = {}
    for name in OUTPUTS:
        frame = read_output(str(out), name).drop(columns=LINEAGE_COLUMNS)
        frame = frame.drop(columns=[c for c in ("fit_seconds", "predict_seconds") if c in frame])
        order = [c for c in ("shop_id", "window_start", "date") if c in frame]
        frames[name] = frame.sort_values(order, ignore_index=True)
    return frames


def test_period_year_from_the_date_gives_the_outputs_of_a_year_column(tmp_path, write_parquet):
    """The same daily rows, once with their year column, once without it and --period=year: the written
    frames are equal value for value, dtypes and labels included."""
    data = make_rows({"A": [2001, 2002, 2003, 2004], "B": [2001, 2002, 2004], "C": [2002, 2003, 2004]})
    with_column = write_parquet(data, "with_year.parquet")
    date_only = write_parquet(data.drop(columns="year"), "date_only.parquet")
    run_pipeline(tmp_path / "column", f"--input={with_column}", "--model=ridge", "--run_id=same")
    run_pipeline(tmp_path / "derived", f"--input={date_only}", "--model=ridge", "--run_id=same", "--period=year")
    explicit, derived = _frames(tmp_path / "column"), _frames(tmp_path / "derived")
    for name in OUTPUTS:
        pd.testing.assert_frame_equal(derived[name], explicit[name], check_exact=True, obj=name)
    assert set(explicit["predictions"]["period_label"]) == {"2003", "2004"}
    assert set(explicit["ledger"]["window_label"]) == {"2001..2003", "2002..2004"}


def _monthly(lengths: dict[str, tuple[str, int]], future: int = 0, seed: int = 0) -> pd.DataFrame:
    """key -> (first month, number of months) of monthly rows dated the 1st: a seasonal target, no feature;
    `future` more months with an empty target (to forecast)."""
    rng = np.random.default_rng(seed)
    frames = []
    for key, (first, count) in lengths.items():
        dates = pd.date_range(first, periods=count + future, freq="MS")
        sales = 100 + 10 * np.sin(2 * np.pi * dates.month.to_numpy() / 12) + rng.normal(scale=0.5, size=len(dates))
        sales[count:] = np.nan
        frames.append(pd.DataFrame({"shop_id": key, "date": dates.date, "sales": sales}))
    return pd.concat(frames, ignore_index=True)


def test_monthly_date_only_table_runs_end_to_end_with_month_labels(tmp_path, write_parquet):
    """Key, date and target only: --period=month --features= with a generated feature (the calendar month;
    the lags of issue 21 §2 would do as well) gives predictions, metrics, ledger and forecasts whose
    periods read YYYY-MM."""
    data = _monthly({"A": ("2018-01-01", 48), "B": ("2019-03-01", 36)}, future=3)
    out = tmp_path / "out"
    summary = run_pipeline(out, f"--input={write_parquet(data)}", "--model=ridge", "--period=month",
                           "--time_column=period", "--features=", "--calendar_features=month",
                           "--window_size=24", "--window_period=6", "--test_periods=6", "--forecast")
    assert summary["groups_trained"] > 0
    predictions = read_output(str(out), "predictions")
    month = periods.ordinals(pd.to_datetime(predictions["date"]).to_numpy(), "month")
    assert (predictions["period"] == month).all()
    assert (predictions["period_label"] == pd.to_datetime(predictions["date"]).dt.strftime("%Y-%m")).all()
    metrics = read_output(str(out), "metrics")
    assert metrics["test_label"].str.fullmatch(r"\d{4}-\d{2}\.\.\d{4}-\d{2}").all()
    ledger = read_output(str(out), "ledger")
    assert ledger["window_label"].dropna().str.fullmatch(r"\d{4}-\d{2}\.\.\d{4}-\d{2}").all()
    forecasts = read_output(str(out), "forecasts")
    assert sorted(forecasts.loc[forecasts["shop_id"] == "A", "period_label"]) == ["2022-01", "2022-02", "2022-03"]
    assert sorted(forecasts.loc[forecasts["shop_id"] == "B", "period_label"]) == ["2022-03", "2022-04", "2022-05"]


def test_derived_period_column_named_after_the_unit_unless_it_clashes():
    params, _ = parse_args(["--period=month", "--features=", "--lag_days=1"])
    assert params.time_column == "month" and "month" not in params.columns
    assert parse_args(["--period=week", "--time_column=wk"])[0].time_column == "wk"
    with pytest.raises(ParameterError, match="time_column.*calendar feature 'month'"):
        parse_args(["--period=month", "--features=", "--calendar_features=month"])


def test_no_feature_at_all_is_refused_for_a_regressor_naming_the_alternatives():
    with pytest.raises(ParameterError, match="features.*--calendar_features") as error:
        parse_args(["--features=", "--model=ridge"])
    assert "ridge" in str(error.value)
    assert parse_args(["--features=", "--calendar_features=month"])[0].features == ()


def _yyyymm(months: int = 30) -> pd.DataFrame:
    dates = pd.date_range("2019-01-01", periods=months, freq="MS")
    rng = np.random.default_rng(1)
    return pd.DataFrame({"shop_id": "A", "date": dates.date, "month": dates.year * 100 + dates.month,
                         "sales": rng.normal(size=months), "x": rng.normal(size=months)})


def test_yyyymm_period_column_is_refused_at_launch_naming_period_month(tmp_path, write_parquet):
    source = write_parquet(_yyyymm())
    with pytest.raises(ParameterError, match="--period=month"):
        run_pipeline(tmp_path / "out", f"--input={source}", "--time_column=month", "--features=x")
    assert not (tmp_path / "out").exists()
    run_pipeline(tmp_path / "meant", f"--input={source}", "--time_column=month", "--features=x", "--model=ridge",
                 "--period_gaps_ok=true")
    assert len(read_output(str(tmp_path / "meant"), "ledger"))


def test_yyyymmdd_period_column_read_by_the_pipeline_fails_before_any_fit(tmp_path):
    """A CSV input (the launcher does not read it through): the pipeline's period range refuses it."""
    dates = pd.date_range("2021-01-25", periods=20, freq="D")
    frame = pd.DataFrame({"shop_id": "A", "date": dates.date, "day": dates.strftime("%Y%m%d").astype(int),
                          "sales": np.arange(20.0), "x": np.arange(20.0) % 3})
    path = tmp_path / "days.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(Exception, match="--period=day"):
        run_pipeline(tmp_path / "out", f"--input={path}", "--time_column=day", "--features=x", "--model=ridge")
    assert not (tmp_path / "out" / "ledger").exists()


def test_calendar_integer_unit():
    assert periods.calendar_integer_unit([202111, 202112, 202201]) == "month"
    assert periods.calendar_integer_unit([20210131, 20210201]) == "day"
    assert periods.calendar_integer_unit([202101, 202102, 202103]) is None  # no year boundary: no gap
    assert periods.calendar_integer_unit(list(range(2001, 2030))) is None
    assert periods.calendar_integer_unit(list(range(24240, 24300))) is None  # a month index
    assert periods.calendar_integer_unit([202113, 202201]) is None  # not months
