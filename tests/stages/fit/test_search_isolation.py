"""Search mode (--param_grid) has the isolation of plain training: the time limit applies to every
scoring fit and to the refit, a refit-and-predict that breaks is a failed ledger row with its reason
(not a failed job), and the failure budget (--max_failure_rate) counts those rows.

The test-only FaultyRegressor (tests/helpers/faulty_models.py) misbehaves for chosen key x windows;
`from_rows` confines its faults to fits on at least that many rows. With 5 rows per period, 3-period
windows and 1 validation period, a scoring fit sees 5 rows and the refit 10, so from_rows=10 breaks only
the refit-and-predict step.
"""

from __future__ import annotations

import json

from pipeline import run as pipeline_run
from tests.helpers import faulty_models
from tests.helpers.faulty_models import KEYS, WINDOWS, chosen_groups
from tests.helpers.faulty_models import clean_input, faulty_model  # noqa: F401 (fixtures)
from tests.helpers.pipeline_runs import IN_PROCESS, read_output, run_pipeline

GRID = "--param_grid=" + json.dumps({"hang_seconds": [8, 9]})  # two configurations, both faulty alike


def ledger_rows(output) -> dict:
    ledger = read_output(str(output), "ledger")
    assert len(ledger) == len(KEYS) * len(WINDOWS)  # every planned key x window exactly once
    assert not ledger.duplicated(["shop_id", "window_start"]).any()
    return {(r.shop_id, r.window_start): r for r in ledger.itertuples()}


def search_run(output, input_path, model_params: dict, *extra: str) -> dict:
    return run_pipeline(output, f"--input={input_path}", "--model=faulty", GRID,
                        f"--model_params={json.dumps(model_params)}", *extra)


def test_scoring_fits_stop_at_the_group_timeout(tmp_path, faulty_model, clean_input):
    hanging = chosen_groups(0.07)
    assert 1 <= len(hanging) <= 3  # each costs a helper restart per configuration
    summary = search_run(tmp_path / "out", clean_input, {"hang_fraction": 0.07}, "--group_timeout_s=3",
                         "--max_failure_rate=1")
    ledger = ledger_rows(tmp_path / "out")
    failed = {group for group, row in ledger.items() if row.status == "failed"}
    assert failed == hanging
    for group in hanging:
        assert ledger[group].reason == "no_valid_config"
        assert "CallTimeout: did not finish within 3 s" in ledger[group].error_message
    scores = read_output(str(tmp_path / "out"), "search")
    timed_out = scores[scores["error_message"].str.startswith("CallTimeout")]
    assert set(zip(timed_out["shop_id"], timed_out["window_start"])) == hanging
    assert len(timed_out) == 2 * len(hanging)  # both configurations of each hanging group
    assert summary["groups_failed"] == len(hanging)


def test_refit_stops_at_the_group_timeout(tmp_path, faulty_model, clean_input):
    hanging = chosen_groups(0.07)
    search_run(tmp_path / "out", clean_input, {"hang_fraction": 0.07, "from_rows": 10}, "--group_timeout_s=3",
               "--max_failure_rate=1")
    ledger = ledger_rows(tmp_path / "out")
    timed_out = {group for group, row in ledger.items() if row.status == "failed"}
    assert timed_out == hanging
    for group in hanging:
        row = ledger[group]
        assert (row.reason, row.error_class) == ("timeout", "CallTimeout")
        assert row.config_id in (0, 1)  # the scoring went through; the refit overran
    assert all(row.status == "trained" for group, row in ledger.items() if group not in hanging)


def test_a_broken_refit_is_a_ledger_row_not_a_failed_job(tmp_path, faulty_model, clean_input):
    """Predictions of the wrong length break the step after the refit's fit: a failed ledger row
    (reason unexpected_error), the other groups trained, and the search scores still written."""
    broken = chosen_groups(0.2)
    assert 0 < len(broken) < len(KEYS) * len(WINDOWS)
    summary = search_run(tmp_path / "out", clean_input, {"wrong_length_fraction": 0.2, "from_rows": 10},
                         "--max_failure_rate=1")
    ledger = ledger_rows(tmp_path / "out")
    failed = {group for group, row in ledger.items() if row.status == "failed"}
    assert failed == broken
    for group in broken:
        row = ledger[group]
        assert (row.reason, row.error_class) == ("unexpected_error", "ValueError")
        assert "rows in the window" in row.error_message
    predicted = read_output(str(tmp_path / "out"), "predictions")
    assert set(zip(predicted["shop_id"], predicted["window_start"])) == set(ledger) - broken
    scores = read_output(str(tmp_path / "out"), "search")
    assert set(zip(scores["shop_id"], scores["window_start"])) == set(ledger)  # every group's scores kept
    assert summary["groups_failed"] == len(broken) and summary["failed_by_reason"] == {
        "unexpected_error": len(broken)}
    assert summary["counts_reconcile"] == {"rows": True, "groups": True}


def test_failure_budget_applies_to_search_failures(tmp_path, faulty_model, clean_input, capsys):
    failed = len(chosen_groups(0.2))
    code = pipeline_run.main([f"--output={tmp_path / 'out'}", f"--input={clean_input}", "--model=faulty", GRID,
                              '--model_params={"wrong_length_fraction": 0.2, "from_rows": 10}',
                              "--max_failure_rate=0.1", *IN_PROCESS])
    assert code == 1
    message = capsys.readouterr().err
    assert f"{failed} of {len(KEYS) * len(WINDOWS)} key x windows failed" in message
    assert "--max_failure_rate=0.1" in message and "unexpected_error" in message
    ledger = ledger_rows(tmp_path / "out")
    assert sum(row.status == "failed" for row in ledger.values()) == failed
