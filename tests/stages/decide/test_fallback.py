"""--fallback_model: a key x window whose candidate fails or is skipped for too little history is fitted with
the fallback; the ledger and every prediction row say which model produced it and why; counts reconcile."""

import numpy as np
import pytest

from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from tests.helpers.faulty_models import faulty_model  # noqa: F401 (fixture)
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline

# A, B: 2001-2004 (windows 2001, 2002 of 3 periods); C: 2002-2004, so its window 2001 lacks a period.
SPEC = {"A": [2001, 2002, 2003, 2004], "B": [2001, 2002, 2003, 2004], "C": [2002, 2003, 2004]}
ORDER = ["shop_id", "window_start", "date"]


def test_a_failing_model_falls_back_and_every_row_says_so(tmp_path, faulty_model):
    path = tmp_path / "rows.parquet"
    make_rows(SPEC, days=25).to_parquet(path, index=False)
    summary = run_pipeline(tmp_path / "out", f"--input={path}", "--model=faulty", "--fallback_model=ridge",
                           '--model_params={"fail_fraction": 1.0}', "--run_id=fb")
    ledger = read_output(str(tmp_path / "out"), "ledger").set_index(["shop_id", "window_start"])
    assert set(ledger["model"]) == {"faulty"} and set(ledger["fitted_model"]) == {"ridge"}
    assert set(ledger["status"]) == {"trained"}
    assert ledger.loc[("C", 2001), "reason"] == "fallback: too_few_periods"
    failed_over = ledger.drop(index=("C", 2001))
    assert set(failed_over["reason"]) == {"fallback: fit_error"} and set(failed_over["fallback"]) == {"fit_error"}
    assert set(failed_over["error_class"]) == {"InjectedFault"}  # the candidate's own error is kept
    predictions = read_output(str(tmp_path / "out"), "predictions")
    assert set(predictions["fitted_model"]) == {"ridge"} and set(predictions["model"]) == {"faulty"}
    assert set(predictions["fallback"]) == {"fit_error", "too_few_periods"}
    # Counts reconcile: every planned key x window is trained by the fallback, and counted as such.
    assert summary["groups_planned"] == 6 == summary["groups_trained"] + summary["groups_skipped"] + \
        summary["groups_failed"]
    assert summary["groups_trained"] == 6 and summary["fallback_by_reason"] == {
        "fallback: fit_error": 5, "fallback: too_few_periods": 1}
    # The fallback's rows are what ridge alone predicts on the same windows, bit for bit.
    run_pipeline(tmp_path / "ridge", f"--input={path}", "--model=ridge", "--run_id=fb")
    alone = read_output(str(tmp_path / "ridge"), "predictions").sort_values(ORDER, ignore_index=True)
    fell = predictions[predictions["fallback"] == "fit_error"].sort_values(ORDER, ignore_index=True)
    assert np.array_equal(fell["predicted"].to_numpy(), alone["predicted"].to_numpy())


def test_without_a_fallback_the_failures_stay_failures(tmp_path, faulty_model):
    path = tmp_path / "rows.parquet"
    make_rows(SPEC, days=25).to_parquet(path, index=False)
    summary = run_pipeline(tmp_path / "out", f"--input={path}", "--model=faulty", "--max_failure_rate=1",
                           '--model_params={"fail_fraction": 0.5}')  # all failing: nothing published
    ledger = read_output(str(tmp_path / "out"), "ledger")
    assert "fitted_model" not in ledger and summary["groups_failed"] >= 1 and summary["groups_skipped"] == 1
    assert summary["groups_failed"] == int((ledger["status"] == "failed").sum())
    assert "fallback_by_reason" not in summary


@pytest.mark.parametrize("value", ["nope", "ridge+gbr"])
def test_a_fallback_outside_the_registry_is_refused(value):
    with pytest.raises(ParameterError) as error:
        parse_args(["--model=gbr", f"--fallback_model={value}"])
    assert error.value.name == "fallback_model"


def test_a_forecast_whose_model_fails_is_the_fallbacks_and_says_so(tmp_path, faulty_model):
    import pandas as pd
    from tests.stages.decide.test_forecast import future

    path = tmp_path / "rows.parquet"
    pd.concat([make_rows(SPEC, days=25), future("A", 2005), future("C", 2005)], ignore_index=True).to_parquet(
        path, index=False)
    run_pipeline(tmp_path / "out", f"--input={path}", "--model=faulty", "--fallback_model=ridge", "--forecast=true",
                 '--model_params={"fail_fraction": 1.0}', "--run_id=fbf")
    forecasts = read_output(str(tmp_path / "out"), "forecasts")
    assert set(forecasts["shop_id"]) == {"A", "C"}
    assert set(forecasts["model"]) == {"faulty"} and set(forecasts["fitted_model"]) == {"ridge"}
    assert set(forecasts["fallback"]) == {"fit_error"}
    ledger = read_output(str(tmp_path / "out"), "ledger")
    rows = ledger[ledger["reason"].str.startswith("forecast")]
    assert set(rows["reason"]) == {"forecast_fallback: fit_error"} and set(rows["status"]) == {"trained"}
    assert set(rows["error_class"]) == {"InjectedFault"}
