"""A local run ends with a short table a person reads (summary.json printed only with --json), and says
loudly, on stdout and at the top of the report, when the model loses to the naive baseline."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.record import run_summary, scores
from tests.helpers.pipeline_runs import make_rows, run_pipeline


def seasonal_rows(keys: int = 4, years=range(2001, 2006), days: int = 30) -> pd.DataFrame:
    """The same values every year on the same day (the seasonal naive baseline is exact) and features that
    are pure noise: any fitted model loses to the baseline."""
    rng = np.random.default_rng(3)
    frames = []
    for k in range(keys):
        for year in years:
            frames.append(pd.DataFrame({
                "year": year, "date": pd.date_range(f"{year}-01-01", periods=days, freq="D").date,
                "shop_id": f"S{k}", "sales": 20 + 5 * np.sin(np.arange(days) / 3) + k,
                "attr1": rng.normal(size=days), "attr2": rng.normal(size=days), "attr3": rng.normal(size=days)}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def losing_input(tmp_path):
    path = tmp_path / "seasonal.parquet"
    seasonal_rows().to_parquet(path, index=False)
    return str(path)


def test_a_losing_model_is_said_loudly_in_a_short_table(tmp_path, losing_input, capsys):
    summary = run_pipeline(tmp_path / "out", f"--input={losing_input}", "--model=ridge")
    printed = capsys.readouterr().out
    assert printed.startswith("WARNING: ridge LOSES TO the naive baseline")
    assert "better than the baseline on 0 of 4 keys" in printed
    assert "test period" in printed and "baseline RMSE" in printed
    for period in summary["rmse_by_test_period"]:
        assert f"\n{period} " in printed
    assert "Key x windows: 12 planned, 12 trained, 0 skipped, 0 failed" in printed
    assert '"rows_read"' not in printed and len(printed.splitlines()) < 25  # not summary.json
    report = (tmp_path / "out" / "report.html").read_text()
    body = report[report.index("<body>"):]
    assert body.index("LOSES TO the naive baseline") < body.index("<table")  # at the top of the report


def test_json_prints_summary_json_for_scripts(tmp_path, losing_input, capsys):
    summary = run_pipeline(tmp_path / "out", f"--input={losing_input}", "--model=ridge", "--json")
    printed = capsys.readouterr().out
    document = json.loads(printed[:printed.index("\nOutputs under")])
    assert document["groups_trained"] == summary["groups_trained"] == 12
    assert document["rmse_by_test_period"] == summary["rmse_by_test_period"]


def test_several_models_show_each_models_rmse_and_the_keys_each_wins(tmp_path, write_parquet, capsys):
    path = write_parquet(make_rows({k: [2001, 2002, 2003, 2004] for k in "ABC"}, days=15))
    run_pipeline(tmp_path / "out", f"--input={path}", "--model=ridge,gbr", '--model_params={"gbr": {"n_estimators": 10}}',
                 "--select_metric=rmse")
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if "baseline RMSE" in line)
    assert header.split() == ["ridge", "RMSE", "ridge", "MASE", "gbr", "RMSE", "gbr", "MASE", "baseline", "RMSE",
                              "keys"]
    assert "WARNING" not in printed and "ridge beats the naive baseline" in printed
    assert "Keys won (chosen on the backtest, by RMSE): ridge " in printed


def test_mase_is_shown_when_the_metrics_have_it():
    metrics = pd.DataFrame({"shop_id": ["A", "B", "A", "B"], "test_start": [3, 3, 4, 4], "rows_test": [10] * 4,
                            "rmse": [1.0, 3.0, 2.0, 2.0], "baseline_rmse": [2.0] * 4, "mase": [0.5, 1.5, 1.0, 0.75],
                            "model": ["ridge"] * 4})
    text = run_summary.format_result({"run_id": "r", "parameters": {"key_column": "shop_id"}}, metrics)
    header = next(line for line in text.splitlines() if "baseline RMSE" in line)
    assert header.split() == ["RMSE", "MASE", "baseline", "RMSE", "keys"]
    row = next(line for line in text.splitlines() if line.startswith("3 "))
    assert row.split() == ["3", scores.fmt(np.sqrt(5.0)), "1", "2", "2"]


@pytest.mark.parametrize("value, shown", [(23.58743929077485, "23.59"), (1234567.0, "1,234,567"), (3e300, "3e+300"),
                                          (float("inf"), "inf"), (0.0001234, "0.000123")])
def test_numbers_are_rounded_as_people_read_them(value, shown):
    assert scores.fmt(value) == shown
