"""Fault injection: models that raise, hang or return garbage for chosen key x windows.

The test-only FaultyRegressor (tests/helpers/faulty_models.py) is registered as --model=faulty.
Which groups misbehave follows from registry.group_seed, so the expected ledger is computed here.
"""

from __future__ import annotations

import json
import os

import apache_beam as beam
import pandas as pd
import pytest

from pipeline import run as pipeline_run
from pipeline.io.publishing.results import read_summary
from pipeline.utils.deadline import CallTimeout, DeadlineCaller, HelperCrashed, RemoteError
from tests.helpers import faulty_models
from tests.helpers.faulty_models import KEYS, WINDOWS, YEARS, chosen_groups
from tests.helpers.faulty_models import clean_input, faulty_model  # noqa: F401 (fixtures)
from tests.helpers.pipeline_runs import IN_PROCESS, make_rows, read_output, run_pipeline



def ledger_status(output) -> dict:
    ledger = read_output(str(output), "ledger")
    return {(r.shop_id, r.window_start): r for r in ledger.itertuples()}


def test_failing_groups_are_recorded_and_the_rest_trained(tmp_path, faulty_model, clean_input):
    expected_failed = chosen_groups(0.3)
    assert 0 < len(expected_failed) < len(KEYS) * len(WINDOWS)
    summary = run_pipeline(tmp_path / "out", f"--input={clean_input}", "--model=faulty",
                           '--model_params={"fail_fraction": 0.3}', "--max_failure_rate=0.5")

    ledger = ledger_status(tmp_path / "out")
    assert len(ledger) == len(KEYS) * len(WINDOWS)
    failed = {group for group, row in ledger.items() if row.status == "failed"}
    assert failed == expected_failed
    for group in failed:
        row = ledger[group]
        assert (row.reason, row.error_class) == ("fit_error", "InjectedFault")
        assert "injected fault" in row.error_message and row.rows_train == 10 and row.rows_test == 5
    assert all(row.status == "trained" for group, row in ledger.items() if group not in failed)
    assert summary["groups_failed"] == len(failed) and summary["failed_by_reason"] == {"fit_error": len(failed)}
    predicted_groups = set(map(tuple, read_output(str(tmp_path / "out"), "predictions")[
        ["shop_id", "window_start"]].drop_duplicates().itertuples(index=False)))
    assert predicted_groups == set(ledger) - failed


def test_too_many_failures_fail_the_job_after_writing_everything(tmp_path, faulty_model, clean_input, capsys):
    failed = len(chosen_groups(0.3))
    code = pipeline_run.main([f"--output={tmp_path / 'out'}", f"--input={clean_input}", "--model=faulty",
                              '--model_params={"fail_fraction": 0.3}', "--max_failure_rate=0.1", *IN_PROCESS])
    assert code == 1
    message = capsys.readouterr().err
    assert f"{failed} of {len(KEYS) * len(WINDOWS)} key x windows failed" in message
    assert "--max_failure_rate=0.1" in message and "fit_error" in message
    # The outputs are complete and published: the ledger says which groups failed and why.
    with open(tmp_path / "out" / "summary.json") as handle:
        written = json.load(handle)
    assert written["groups_failed"] == failed and written["failure_rate"] > 0.1
    assert sum(row.status == "failed" for row in ledger_status(tmp_path / "out").values()) == failed
    assert not os.path.exists(tmp_path / "out" / "_staging")


def test_hanging_fit_is_stopped_at_the_group_timeout(tmp_path, faulty_model, clean_input):
    hanging = chosen_groups(0.07)
    assert 1 <= len(hanging) <= 3  # each one costs a helper restart
    run_pipeline(tmp_path / "out", f"--input={clean_input}", "--model=faulty", "--group_timeout_s=10",
                 '--model_params={"hang_fraction": 0.07, "hang_seconds": 3600}', "--max_failure_rate=1")
    ledger = ledger_status(tmp_path / "out")
    timed_out = {group for group, row in ledger.items() if row.reason == "timeout"}
    assert timed_out == hanging
    for group in hanging:
        assert (ledger[group].status, ledger[group].error_class) == ("failed", "CallTimeout")
        assert "did not finish within 10 s" in ledger[group].error_message
    assert all(row.status == "trained" for group, row in ledger.items() if group not in hanging)


def test_errors_outside_the_fit_land_in_the_ledger(tmp_path, faulty_model, clean_input):
    """A model whose predictions have the wrong length breaks the step after the fit: Beam's
    exception handling turns it into a failed ledger row instead of a crashed job."""
    broken = chosen_groups(0.2)
    summary = run_pipeline(tmp_path / "out", f"--input={clean_input}", "--model=faulty",
                           '--model_params={"wrong_length_fraction": 0.2}', "--max_failure_rate=1")
    ledger = ledger_status(tmp_path / "out")
    unexpected = {group for group, row in ledger.items() if row.reason == "unexpected_error"}
    assert unexpected == broken and broken
    assert all("rows in the window" in ledger[group].error_message for group in broken)
    assert summary["counts_reconcile"] == {"rows": True, "groups": True}
    assert summary["groups_planned"] == len(KEYS) * len(WINDOWS)


def test_beam_counters_reconcile_on_messy_data(tmp_path, faulty_model):
    """rows read = used + rejected and planned = trained + skipped + failed, as Beam metrics."""
    data = make_rows({key: YEARS for key in KEYS[:4]} | {"short": [2001, 2002]}, days=5)
    data.loc[0, "shop_id"] = None
    data.loc[1, "year"] = 10**12
    data.loc[2, "sales"] = float("inf")
    data = data.astype({"year": "float64"})
    data.loc[3, "year"] = 2001.5
    messy = pd.concat([data, data.iloc[[10, 11]]], ignore_index=True)  # duplicate (key, date) rows
    messy.to_parquet(tmp_path / "messy.parquet", index=False)
    argv = [f"--output={tmp_path / 'out'}", f"--input={tmp_path / 'messy.parquet'}", "--model=faulty",
            '--model_params={"fail_fraction": 0.3}', "--max_failure_rate=1", *IN_PROCESS]
    params, beam_options, kind = pipeline_run.prepare(argv)
    pipeline = beam.Pipeline(options=beam_options)
    pipeline_run.build(pipeline, params, kind)
    result = pipeline.run()
    result.wait_until_finish()

    counters = {}
    for counter in result.metrics().query()["counters"]:
        counters[counter.key.metric.name] = counters.get(counter.key.metric.name, 0) + counter.committed
    assert counters["rows_read"] == len(messy) == counters["rows_used"] + counters["rows_rejected"]
    assert counters["rows_rejected"] == 6
    assert counters["groups_planned"] == (counters.get("groups_trained", 0) + counters.get("groups_skipped", 0)
                                          + counters.get("groups_failed", 0))
    assert counters.get("groups_failed", 0) > 0 and counters.get("groups_skipped", 0) > 0
    written = read_summary(params.output)
    assert {k: written[k] for k in ("rows_read", "rows_used", "rows_rejected", "groups_planned",
                                    "groups_failed")} == {
        k: counters.get(k, 0) for k in ("rows_read", "rows_used", "rows_rejected", "groups_planned",
                                        "groups_failed")}


def test_deadline_caller_survives_errors_crashes_and_timeouts():
    caller = DeadlineCaller(seconds=5)
    try:
        assert caller.call(divmod, 7, 2) == (3, 1)
        with pytest.raises(RemoteError) as error:
            caller.call(int, "not a number")
        assert error.value.class_name == "ValueError"
        with pytest.raises(HelperCrashed):
            caller.call(os._exit, 3)
        caller.seconds = 1
        with pytest.raises(CallTimeout):
            caller.call(faulty_models.time.sleep, 60)
        assert caller.call(divmod, 9, 4) == (2, 1)  # a fresh helper after the kill
    finally:
        caller.stop()


def test_a_chunk_that_breaks_the_validator_is_rejected_whole():
    """Beam's exception handling on validation: an unexpected error rejects the chunk's rows, none lost."""
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.run import parse_args
    from pipeline.stages.prepare import rows

    params, _ = parse_args(["--input=unused.parquet"])
    good = make_rows({"A": [2001]}, days=3)
    broken = good.drop(columns="sales")  # the validator itself fails on it (KeyError)
    with TestPipeline(options=beam.options.pipeline_options.PipelineOptions(IN_PROCESS)) as pipeline:
        result = (pipeline | beam.Create([good, broken], reshuffle=False)
                  | rows.ValidateAndGroupByKey(params))
        assert_that(result[rows.REJECTED] | "Reasons" >> beam.FlatMap(lambda f: list(zip(f["reason"], f["field"]))),
                    equal_to([("unexpected_error", "*")] * 3), label="RejectedRows")
        totals = (result[rows.COUNTS]
                  | beam.FlatMap(lambda c: [(k, c.get(k, 0)) for k in ("rows_read", "rows_used",
                                                                        "rows_rejected_validation")])
                  | beam.CombinePerKey(sum))
        assert_that(totals, equal_to([("rows_read", 6), ("rows_used", 3), ("rows_rejected_validation", 3)]),
                    label="Counts")


@pytest.mark.parametrize("fault, message", [("disk_full_fraction", "No space left on device"),
                                            ("out_of_memory_fraction", "MemoryError")])
def test_infrastructure_errors_in_a_fit_fail_the_run_and_publish_nothing(tmp_path, faulty_model, clean_input,
                                                                          fault, message):
    """A full disk or exhausted memory during one group's fit is not that group's failure: the run fails
    loudly (the runner would retry the bundle) and publishes nothing; before, it was a failed ledger row."""
    assert chosen_groups(0.3)
    with pytest.raises(BaseException) as raised:
        run_pipeline(tmp_path / "out", f"--input={clean_input}", "--model=faulty",
                     f'--model_params={{"{fault}": 0.3}}', "--max_failure_rate=1")
    assert message in f"{raised.value!r} {raised.value}"
    assert not os.path.exists(tmp_path / "out" / "summary.json")
    assert not os.path.exists(tmp_path / "out" / "ledger")
