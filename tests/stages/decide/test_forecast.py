"""--forecast: rows to forecast are not rejected (nulls inside a key's observed span still are), counts
reconcile, a key without enough history gets a ledger row, and the forecast is a hand refit of the chosen
model on the same rows with the same seed, bit for bit."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from pipeline.models import registry
from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from pipeline.stages.decide import forecast
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline

FUTURE_DAYS = 5


def future(key: str, period: int, days: int = FUTURE_DAYS) -> pd.DataFrame:
    """Rows to forecast: dates and features known, the target empty."""
    rng = np.random.default_rng(hash((key, period)) % 2**32)
    return pd.DataFrame({"year": period, "date": pd.date_range(f"{period}-01-01", periods=days, freq="D").date,
                         "shop_id": key, "sales": np.nan, "attr1": rng.normal(size=days),
                         "attr2": rng.normal(size=days), "attr3": rng.normal(size=days)})


def forecast_data() -> tuple[pd.DataFrame, int]:
    """A: observed 2001-2004, future 2005, one null target inside its span (2003);
    C: observed 2001-2003, its 2004 is after its last observed period (other keys observe 2004);
    D: observed in 2004 only (not enough history for its 2005)."""
    observed = make_rows({"A": list(range(2001, 2005)), "B": list(range(2001, 2005)),
                          "C": list(range(2001, 2004)), "D": [2004]}, days=20)
    inside = observed.index[(observed["shop_id"] == "A") & (observed["year"] == 2003)][3]
    observed.loc[inside, "sales"] = np.nan
    rows = pd.concat([observed, future("A", 2005), future("C", 2004), future("D", 2005)], ignore_index=True)
    return rows, 1


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("forecast")
    rows, _ = forecast_data()
    path = base / "rows.parquet"
    rows.to_parquet(path, index=False)
    with_forecast = run_pipeline(base / "fc", f"--input={path}", "--model=gbr", "--forecast=true",
                                 "--run_id=fc", "--seed=3", f"--model_dir={base / 'models'}")
    without = run_pipeline(base / "plain", f"--input={path}", "--model=gbr", "--run_id=plain", "--seed=3")
    return base, rows, with_forecast, without


def test_rows_to_forecast_are_not_rejected_and_nulls_inside_the_span_still_are(runs):
    base, rows, summary, without = runs
    rejected = read_output(str(base / "fc"), "rejected_rows")
    assert len(rejected) == 1 and rejected.iloc[0]["reason"] == "bad_target"
    assert rejected.iloc[0]["stage"] == "validate" and rejected.iloc[0]["field"] == "sales"
    assert json.loads(rejected.iloc[0]["row_json"])["year"] == 2003  # the null inside A's span
    assert summary["rows_to_forecast"] == 3 * FUTURE_DAYS
    assert summary["rows_read"] == len(rows) == summary["rows_used"] + summary["rows_to_forecast"] + \
        summary["rows_rejected"]
    assert summary["counts_reconcile"] == {"rows": True, "groups": True}
    # Without --forecast every null target is rejected, as before.
    plain_rejected = read_output(str(base / "plain"), "rejected_rows")
    assert len(plain_rejected) == 1 + 3 * FUTURE_DAYS and set(plain_rejected["reason"]) == {"bad_target"}
    assert "rows_to_forecast" not in without and without["counts_reconcile"]["rows"]
    # The backtest is the same with and without --forecast (future rows plan no window).
    fc = read_output(str(base / "fc"), "predictions").drop(columns=["run_id", "params_hash"])
    plain = read_output(str(base / "plain"), "predictions").drop(columns=["run_id", "params_hash"])
    order = ["shop_id", "window_start", "date"]
    pd.testing.assert_frame_equal(fc.sort_values(order, ignore_index=True), plain.sort_values(order, ignore_index=True))


def test_forecast_outputs_and_the_ledger_row_of_a_key_without_enough_history(runs):
    base, _, summary, _ = runs
    forecasts = read_output(str(base / "fc"), "forecasts")
    assert sorted(forecasts.groupby("shop_id")["year"].first().items()) == [("A", 2005), ("C", 2004)]
    a = forecasts[forecasts["shop_id"] == "A"]
    assert set(a["train_start"]) == {2003} and set(a["train_end"]) == {2004} and set(a["model"]) == {"gbr"}
    assert set(forecasts["run_id"]) == {"fc"} and forecasts["params_hash"].notna().all()
    ledger = read_output(str(base / "fc"), "ledger")
    rows = ledger[ledger["reason"].str.startswith("forecast")].set_index("shop_id")
    assert rows.loc["A", "status"] == "trained" and rows.loc["C", "status"] == "trained"
    assert rows.loc["D", "status"] == "skipped" and rows.loc["D", "reason"] == "forecast_too_few_periods"
    assert "1 of the last 2 observed periods" in rows.loc["D", "error_message"]
    assert summary["forecast"]["keys"] == 3 and summary["forecast"]["keys_forecast"] == 2
    assert summary["forecast"]["skipped_by_reason"] == {"forecast_too_few_periods": 1}
    assert summary["forecast"]["rows_forecast"] == 2 * FUTURE_DAYS
    # The backtest's group counts are unchanged by the forecast's ledger rows.
    assert summary["groups_planned"] == len(ledger) - 3
    assert (base / "models" / "fc" / "A" / "forecast" / "meta.json").exists()


def _hand_refit(rows: pd.DataFrame, key: str, model: str, seed: int, train_periods, model_params=None):
    columns = ["attr1", "attr2", "attr3"]
    observed = rows[(rows["shop_id"] == key) & rows["sales"].notna() & rows["year"].isin(train_periods)]
    observed = observed.sort_values("date")
    to_predict = rows[(rows["shop_id"] == key) & rows["sales"].isna()
                      & (rows["year"] > max(train_periods))].sort_values("date")
    estimator = registry.make_estimator(model, model_params or {}, seed=registry.group_seed(seed, key, "forecast"))
    estimator.fit(np.asfortranarray(observed[columns].to_numpy(dtype=float)), observed["sales"].to_numpy(dtype=float))
    return estimator.predict(np.asfortranarray(to_predict[columns].to_numpy(dtype=float)))


def test_forecasts_equal_a_hand_refit_of_the_model_bit_for_bit(runs):
    base, rows, _, _ = runs
    forecasts = read_output(str(base / "fc"), "forecasts").sort_values(["shop_id", "date"])
    for key, periods in (("A", [2003, 2004]), ("C", [2002, 2003])):
        got = forecasts.loc[forecasts["shop_id"] == key, "predicted"].to_numpy()
        expected = _hand_refit(rows, key, "gbr", 3, periods)
        assert np.array_equal(got, expected), key


def test_several_models_forecast_with_each_keys_chosen_model(tmp_path):
    rows, _ = forecast_data()
    path = tmp_path / "rows.parquet"
    rows.to_parquet(path, index=False)
    run_pipeline(tmp_path / "out", f"--input={path}", "--model=ridge,gbr", "--forecast=true", "--run_id=fc2",
                 "--interval_levels=50")
    chosen = read_output(str(tmp_path / "out"), "selection")
    chosen = chosen[chosen["chosen"]].set_index("shop_id")["model"]
    forecasts = read_output(str(tmp_path / "out"), "forecasts").sort_values(["shop_id", "date"])
    for key, periods in (("A", [2003, 2004]), ("C", [2002, 2003])):
        mine = forecasts[forecasts["shop_id"] == key]
        assert set(mine["model"]) == {chosen[key]}
        assert np.array_equal(mine["predicted"].to_numpy(), _hand_refit(rows, key, chosen[key], 0, periods))
        # The band: the chosen model's backtest residuals of this key only.
        backtest = read_output(str(tmp_path / "out"), "predictions")
        backtest = backtest[(backtest["shop_id"] == key) & (backtest["model"] == chosen[key])]
        scores = np.sort(np.abs(backtest["actual"] - backtest["predicted"]).to_numpy())
        q = scores[-(-(len(scores) + 1) * 50 // 100) - 1]
        assert np.allclose(mine["upper_50"] - mine["predicted"], q) and set(mine["calibration_residuals"]) == {len(scores)}


def test_future_rows_get_features_as_test_rows_do():
    params = parse_args(["--forecast=true", "--lag_days=1", "--calendar_features=day_of_week"])[0]
    observed = make_rows({"A": [2004]}, days=10).drop(columns="shop_id")
    observed["date"] = pd.to_datetime(observed["date"])
    to_predict = future("A", 2005, days=3).drop(columns="shop_id")
    to_predict["date"] = pd.to_datetime(["2004-01-11", "2004-01-12", "2004-01-13"])
    got = forecast.future_features(observed, to_predict, params)
    # The first future date's lag_1 is the last observed target; later ones need targets not known: NaN
    # here, the earlier rows' predictions when forecast (recursive, pipeline.stages.prepare.target_history).
    assert got["lag_1"].iloc[0] == observed["sales"].iloc[-1] and got["lag_1"].iloc[1:].isna().all()
    assert got["day_of_week"].tolist() == [float(d) for d in pd.to_datetime(got["date"]).dt.day_of_week]


def test_a_forecast_table_needs_forecast():
    with pytest.raises(ParameterError) as error:
        parse_args(["--forecast_table=ds.forecasts"])
    assert error.value.name == "forecast_table"


@pytest.fixture(scope="module")
def sample_runs(tmp_path_factory):
    """The embedded sample: without --forecast, with it (and bands), and without its future rows."""
    from pipeline.io.sources import sample_data

    base = tmp_path_factory.mktemp("sample")
    old = base / "without_future.parquet"
    sample_data.generate(future_days=0).to_parquet(old, index=False)
    return base, {
        "plain": run_pipeline(base / "plain", "--run_id=plain"),
        "forecast": run_pipeline(base / "forecast", "--run_id=fc", "--forecast=true", "--interval_levels=80,95"),
        "old": run_pipeline(base / "old", f"--input={old}", "--run_id=old"),
    }


def test_the_samples_future_rows_are_rejected_without_forecast_and_forecast_with_it(sample_runs):
    from pipeline.io.sources import sample_data

    base, summaries = sample_runs
    future = 29 * sample_data.FUTURE_DAYS
    plain, with_forecast, old = summaries["plain"], summaries["forecast"], summaries["old"]
    assert plain["rows_read"] == old["rows_read"] + future == with_forecast["rows_read"]
    assert plain["rows_rejected_by_reason"] == {"bad_target": 2 + future, "duplicate_key_date": 1}
    assert with_forecast["rows_rejected_by_reason"] == {"bad_target": 2, "duplicate_key_date": 1}
    assert with_forecast["rows_to_forecast"] == future == with_forecast["forecast"]["rows_forecast"]
    assert plain["counts_reconcile"]["rows"] and with_forecast["counts_reconcile"]["rows"]
    rejected = read_output(str(base / "forecast"), "rejected_rows")
    assert not any(json.loads(row)["year"] == 2019 for row in rejected["row_json"])
    # The backtest's predictions are those of the sample without future rows, with or without --forecast.
    order = ["shop_id", "window_start", "date"]
    frames = {}
    for name in ("plain", "forecast", "old"):
        frame = read_output(str(base / name), "predictions")
        frames[name] = frame[["shop_id", "date", "year", "window_start", "window_end", "predicted", "actual",
                              "baseline", "model"]].sort_values(order, ignore_index=True)
    pd.testing.assert_frame_equal(frames["plain"], frames["old"])
    pd.testing.assert_frame_equal(frames["forecast"], frames["old"])
    forecasts = read_output(str(base / "forecast"), "forecasts")
    assert forecasts["year"].eq(2019).all() and forecasts["lower_95"].notna().all()
    assert "Forecast: best, median and worst keys" in (base / "forecast" / "report.html").read_text()
    assert "Forecast" not in (base / "plain" / "report.html").read_text()


def test_new_parameters_leave_the_params_hash_of_runs_that_do_not_set_them():
    from pipeline.record import lineage

    # What the code before --forecast / --interval_levels / --forecast_table computed for these runs.
    assert lineage.params_hash(parse_args([])[0]) == "83bf4a6479a81946"
    assert lineage.params_hash(parse_args(["--model=ridge,gbr"])[0]) == "74a6dde4aa0226a9"
    assert lineage.params_hash(parse_args(["--forecast=true"])[0]) != "83bf4a6479a81946"
    assert lineage.params_hash(parse_args(["--interval_levels=80"])[0]) != "83bf4a6479a81946"


def test_forecasts_go_to_their_bigquery_table_partitioned_by_date():
    from pipeline.io.outputs import sinks
    from pipeline.io.warehouse import bigquery
    from tests.io.test_bigquery_graph import ARTICLE_QUERY, dry_run_display_data, values_of

    display = dry_run_display_data([
        f"--query={ARTICLE_QUERY}", "--run_id=r1", "--forecast=true", "--interval_levels=80",
        "--output_table=my-project:results.predictions", "--forecast_table=my-project:results.forecasts"])
    write = "WriteBigQuery/ToBigQuery_forecasts/Write"
    (table,) = values_of(display, "table", write)  # this job's staging table; swapped in at publish
    assert re.fullmatch(r"my-project:results\.forecasts__staging_r1_[0-9a-f]{8}", table), table
    layout = values_of(display, "additional_bq_params", write)
    assert layout and all("'field': 'date'" in v for v in layout)
    params = parse_args(["--forecast=true", "--interval_levels=80,95"])[0]
    names = [f["name"] for f in bigquery.table_schema(sinks.output_schemas(params)["forecasts"])["fields"]]
    assert names[:5] == ["shop_id", "date", "year", "period_label", "predicted"]
    assert {"lower_80", "upper_80", "lower_95", "upper_95", "calibration_residuals", "train_start",
            "train_end", "model", "run_id", "params_hash", "code_version"} <= set(names)


def test_with_a_grid_the_forecast_uses_the_configuration_of_the_keys_last_window():
    params = parse_args(["--param_grid={\"alpha\": [0.1, 10]}", "--model=ridge"])[0]
    rows = [{"model": "ridge", "window_start": 2002, "model_params": "{\"alpha\": 10}"},
            {"model": "ridge", "window_start": 2001, "model_params": "{\"alpha\": 0.1}"}]
    assert forecast.configuration(params, rows) == {"alpha": 10}
    assert forecast.configuration(params, []) is None  # never trained: ledger row forecast_no_configuration
    assert forecast.configuration(parse_args(["--model_params={\"alpha\": 3}", "--model=ridge"])[0], []) == {"alpha": 3}
