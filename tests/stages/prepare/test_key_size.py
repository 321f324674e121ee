"""Hot keys: a key too large for one worker is refused before its fits, with a ledger reason, under a
configurable limit; every other key is fitted; --plan_only reports the largest key (issue 23 §6)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from pipeline.stages.prepare import key_size
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline

YEARS = [2001, 2002, 2003]


@pytest.fixture
def hot_input(write_parquet):
    # HOT: 3 years x 200 days = 600 rows, far over --max_key_rows=100; the others 3 x 15 = 45 rows.
    return write_parquet(pd.concat([make_rows({"HOT": YEARS}, days=200, seed=1),
                                    make_rows({"A": YEARS, "B": YEARS}, days=15, seed=2)], ignore_index=True))


def test_a_key_far_over_the_limit_is_refused_before_its_fits(tmp_path, hot_input):
    summary = run_pipeline(tmp_path / "out", f"--input={hot_input}", "--model=ridge", "--max_key_rows=100",
                           "--max_failure_rate=1")
    ledger = read_output(str(tmp_path / "out"), "ledger")
    refused = ledger[ledger["shop_id"] == "HOT"]
    assert len(refused) == 1  # one row for the key: none of its windows was cut or fitted
    row = refused.iloc[0]
    assert (row["status"], row["reason"]) == ("failed", "key_too_large")
    assert "600 rows > --max_key_rows=100" in row["error_message"] and " bytes" in row["error_message"]
    assert set(ledger.loc[ledger["shop_id"] != "HOT", "status"]) == {"trained"}
    predictions = read_output(str(tmp_path / "out"), "predictions")
    assert set(predictions["shop_id"]) == {"A", "B"}
    assert summary["failed_by_reason"] == {"key_too_large": 1}
    assert summary["counts_reconcile"] == {"rows": True, "groups": True}


def test_the_byte_limit_refuses_too(tmp_path, hot_input):
    run_pipeline(tmp_path / "out", f"--input={hot_input}", "--model=ridge", "--max_key_bytes=10000",
                 "--max_failure_rate=1")
    ledger = read_output(str(tmp_path / "out"), "ledger")
    refused = ledger[ledger["reason"] == "key_too_large"]
    assert list(refused["shop_id"]) == ["HOT"] and "bytes > --max_key_bytes=10000" in refused["error_message"].iloc[0]


def test_plan_only_reports_the_largest_key(tmp_path, hot_input, capsys):
    out = tmp_path / "plan"
    run_pipeline(out, f"--input={hot_input}", "--model=ridge", "--max_key_rows=100", "--plan_only")
    document = json.loads((out / "plan.json").read_text())
    largest = document["largest_key"]
    assert (largest["key"], largest["rows"], largest["max_key_rows"]) == ("HOT", 600, 100)
    assert largest["bytes"] >= 600 * 8 * 3  # at least its period, date and target columns
    assert document["keys_too_large"] == 1
    plan = read_output(str(out), "plan")
    assert "HOT" not in set(plan["shop_id"])
    assert "Largest key: 'HOT', 600 rows" in capsys.readouterr().out


def test_refusal_names_each_limit_and_zero_is_no_limit():
    params = parse_args(["--max_key_rows=10", "--max_key_bytes=100"])[0]
    assert key_size.refusal(10, 100, params) is None
    assert key_size.refusal(11, 101, params) == "11 rows > --max_key_rows=10; 101 bytes > --max_key_bytes=100"
    unlimited = parse_args(["--max_key_rows=0", "--max_key_bytes=0"])[0]
    assert key_size.refusal(10 ** 12, 10 ** 15, unlimited) is None


def test_a_negative_limit_fails_before_work():
    with pytest.raises(ParameterError) as raised:
        parse_args(["--max_key_rows=-1"])
    assert raised.value.name == "max_key_rows"


def test_frame_bytes_are_what_pandas_counts_deep_strings_and_extension_columns_included():
    frame = pd.DataFrame({"period": range(40), "date": pd.date_range("2020-01-01", periods=40, freq="MS"),
                          "sales": [0.5] * 40, "note": ["x" * i for i in range(40)],
                          "shop": pd.Categorical(["a", "b"] * 20), "flag": pd.array([1, None] * 20, dtype="Int64")})
    for part in (frame, frame[["period", "sales"]], frame.iloc[3:17], frame.set_index("note")):
        assert key_size.frame_bytes(part) == int(part.memory_usage(index=True, deep=True).sum())
