"""Duplicates: a second row for the same key and date is rejected (duplicate_key_date), whatever period
it carries; which row is kept does not depend on the order the rows arrive in."""

from __future__ import annotations

import json

import pandas as pd

from tests.helpers.pipeline_runs import LINEAGE_COLUMNS, make_rows, read_output, run_pipeline


def with_relabelled_copies() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean rows, plus copies of three of them under another period (same key and date)."""
    data = make_rows({"A": [2001, 2002, 2003], "B": [2001, 2002, 2003]}, days=6)
    copies = data[(data["shop_id"] == "A") & (data["year"] == 2002)].head(3).assign(year=2003, sales=99.0)
    return data, copies


def run_on(tmp_path, name, frame) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    path = tmp_path / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    summary = run_pipeline(tmp_path / name, f"--input={path}", "--model=ridge", "--window_size=2")
    return summary, read_output(str(tmp_path / name), "rejected_rows"), read_output(str(tmp_path / name),
                                                                                     "predictions")


def test_same_key_and_date_under_another_period_is_rejected(tmp_path):
    data, copies = with_relabelled_copies()
    summary, rejected, predictions = run_on(tmp_path, "dupes", pd.concat([data, copies], ignore_index=True))

    assert summary["rows_read"] == len(data) + 3
    assert summary["rows_rejected"] == 3 and summary["rows_used"] == len(data)
    assert summary["counts_reconcile"]["rows"]
    assert list(rejected["reason"]) == ["duplicate_key_date"] * 3
    rejected_rows = [json.loads(r) for r in rejected["row_json"]]
    assert sorted(r["date"][:10] for r in rejected_rows) == sorted(str(d) for d in copies["date"])
    assert {r["year"] for r in rejected_rows} == {2003}  # the first by (date, period, ...) is kept
    # The model never saw the relabelled copies: no date is predicted twice for a key and window.
    assert not predictions.duplicated(["shop_id", "window_start", "date"]).any()


def test_the_row_kept_does_not_depend_on_arrival_order(tmp_path):
    data, copies = with_relabelled_copies()
    frame = pd.concat([copies, data], ignore_index=True)  # the copies first this time
    _, rejected_first, predictions_first = run_on(tmp_path, "copies_first", frame)
    _, rejected_last, predictions_last = run_on(tmp_path, "copies_last", frame.iloc[::-1])
    assert sorted(rejected_first["row_json"]) == sorted(rejected_last["row_json"])
    assert {json.loads(r)["sales"] for r in rejected_first["row_json"]} == {99.0}
    columns = ["shop_id", "window_start", "date"]
    pd.testing.assert_frame_equal(
        predictions_first.drop(columns=LINEAGE_COLUMNS).sort_values(columns, ignore_index=True),
        predictions_last.drop(columns=LINEAGE_COLUMNS).sort_values(columns, ignore_index=True))
