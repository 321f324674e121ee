"""Dates and keys read as written (issue 23 §1, §2, §7): one bad value costs its row alone, one date
format per column, integers as yyyymmdd, zoned timestamps as their own day, keys as the text written;
infrastructure errors fail the run instead of becoming dead letters; a run that rejects too much or
trains nothing fails without replacing the published outputs."""

from __future__ import annotations

import dataclasses
import datetime
import io
import json

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest

from pipeline import run as pipeline_run
from pipeline.io.sources import files, local_query, sample_data, source
from pipeline.io.publishing.results import read_summary
from pipeline.run import parse_args
from pipeline.stages.prepare import fingerprint, rows
from pipeline.stages.prepare.dates import parse_dates
from tests.helpers.pipeline_runs import IN_PROCESS, make_rows, read_output, run_pipeline


def params(*args: str):
    return parse_args(["--input=unused.parquet", *args])[0]


def chunk(dates, keys=None, **columns) -> pd.DataFrame:
    n = len(dates)
    return pd.DataFrame({"year": 2003, "date": dates, "shop_id": keys if keys is not None else ["A"] * n,
                         "sales": np.arange(n, dtype=float), "attr1": 1.0, "attr2": 2.0, "attr3": 3.0,
                         **columns})


def rejected_reasons(rejected: pd.DataFrame) -> list[tuple[str, str]]:
    return [(reason, json.loads(row)["date"]) for reason, row in zip(rejected["reason"], rejected["row_json"])]


# -- one bad value, one row ------------------------------------------------------------------------------

def test_one_sentinel_date_rejects_its_own_row_only(tmp_path):
    """318 good rows and one 9999-12-31 (a Parquet date32 column): before, the whole chunk was rejected."""
    data = make_rows({"A": [2001, 2002, 2003], "B": [2001, 2002, 2003]}, days=53)
    assert len(data) == 318
    sentinel = data.iloc[[0]].assign(date=datetime.date(9999, 12, 31))
    path = tmp_path / "input.parquet"
    pd.concat([data, sentinel], ignore_index=True).to_parquet(path, index=False)
    summary = run_pipeline(tmp_path / "out", f"--input={path}", "--model=ridge", "--window_size=2")
    assert (summary["rows_used"], summary["rows_rejected"]) == (318, 1)
    assert summary["rows_rejected_by_reason"] == {"bad_date": 1}
    rejected = read_output(str(tmp_path / "out"), "rejected_rows")
    assert rejected_reasons(rejected) == [("bad_date", "9999-12-31")]
    assert summary["groups_trained"] > 0


@pytest.mark.parametrize("values", [
    pd.Series(np.array(["2003-03-01T10:00", "9999-12-31", "0001-01-01"], dtype="datetime64[us]")),
    pd.Series([datetime.date(2003, 3, 1), datetime.date(9999, 12, 31), datetime.date(1, 1, 1)]),
    pd.Series(["2003-03-01", "9999-12-31", "0001-01-01"]),
], ids=["timestamp-us", "date-objects", "text"])
def test_dates_outside_the_nanosecond_range_are_bad_dates_of_their_rows(values):
    valid, rejected, counts = rows.validate_chunk(chunk(values), params())
    assert valid["date"].tolist() == [pd.Timestamp("2003-03-01")]
    assert list(rejected["reason"]) == ["bad_date", "bad_date"]
    assert counts["rows_rejected_validation"] == 2


def test_mixed_timezone_offsets_each_take_the_day_written():
    values = ["2003-03-01T23:30:00+05:00", "2003-03-02T01:00:00-08:00", "2003-03-03T12:00:00Z"]
    valid, rejected, _ = rows.validate_chunk(chunk(values), params())
    assert len(rejected) == 0
    assert valid["date"].dt.strftime("%Y-%m-%d").tolist() == ["2003-03-01", "2003-03-02", "2003-03-03"]


def test_infrastructure_errors_fail_the_run_instead_of_rejecting_rows(tmp_path, monkeypatch):
    """A full or missing spill folder (OSError) is not a data error: the bundle fails, so the runner
    retries it and the run fails loudly; before, every row of the chunk became an unexpected_error."""
    from apache_beam.testing.test_pipeline import TestPipeline

    from pipeline.utils import packing

    monkeypatch.setenv(packing.SPILL_ENV, str(tmp_path / "no-such-folder"))
    with pytest.raises(Exception) as raised:
        with TestPipeline(options=beam.options.pipeline_options.PipelineOptions(IN_PROCESS)) as pipeline:
            _ = (pipeline | beam.Create([make_rows({"A": [2001]}, days=3)], reshuffle=False)
                 | rows.ValidateAndGroupByKey(params()))
    assert "no-such-folder" in str(raised.value)


# -- dates read as written -------------------------------------------------------------------------------

def test_integer_dates_are_read_as_yyyymmdd_and_others_rejected():
    values = pd.Series([20030301, 20030302, 20031399, 7], dtype="int64")
    valid, rejected, _ = rows.validate_chunk(chunk(values), params())
    assert valid["date"].dt.strftime("%Y-%m-%d").tolist() == ["2003-03-01", "2003-03-02"]
    assert rejected_reasons(rejected) == [("bad_date", 20031399), ("bad_date", 7)]


def test_two_rows_of_a_key_on_one_day_at_different_times_are_one_duplicate():
    p = params()
    valid, rejected, _ = rows.validate_chunk(chunk(["2003-03-01 10:00:00", "2003-03-01 15:30:00",
                                                    "2003-03-02 09:00:00"]), p)
    assert len(rejected) == 0
    ordered, duplicated = rows.in_date_order(valid.drop(columns="__key"), p)
    assert duplicated.tolist() == [False, True, False]
    assert ordered.loc[~duplicated, "date"].dt.strftime("%Y-%m-%d").tolist() == ["2003-03-01", "2003-03-02"]


def test_one_format_per_column_and_other_formats_rejected():
    values = ["03/04/2003", "31/12/2003", "12/31/2003", "2003-05-06"]
    valid, rejected, _ = rows.validate_chunk(chunk(values), params())  # inferred from the first: month first
    assert valid["date"].dt.strftime("%Y-%m-%d").tolist() == ["2003-03-04", "2003-12-31"]
    assert rejected_reasons(rejected) == [("bad_date", "31/12/2003"), ("bad_date", "2003-05-06")]
    valid, rejected, _ = rows.validate_chunk(chunk(values), params("--date_format=%d/%m/%Y"))
    assert valid["date"].dt.strftime("%Y-%m-%d").tolist() == ["2003-04-03", "2003-12-31"]
    assert [value for _, value in rejected_reasons(rejected)] == ["12/31/2003", "2003-05-06"]


def test_zoned_timestamps_take_their_own_calendar_day_and_are_fingerprinted(tmp_path):
    """A Parquet column with a zone crashed FingerprintInput; the day is the one on the value's clock."""
    data = make_rows({"A": [2001, 2002, 2003], "B": [2001, 2002, 2003]}, days=5)
    local = pd.to_datetime(data["date"]) + pd.Timedelta(hours=23)
    data["date"] = local.dt.tz_localize("America/New_York")  # 23:00 there is the next day in UTC
    path = tmp_path / "input.parquet"
    data.to_parquet(path, index=False)
    summary = run_pipeline(tmp_path / "out", f"--input={path}", "--model=ridge", "--window_size=2")
    assert summary["rows_used"] == len(data) and summary["input_fingerprint"]["rows"] == len(data)
    predicted = read_output(str(tmp_path / "out"), "predictions")["date"]
    assert set(pd.to_datetime(predicted).dt.strftime("%m-%d")) <= {f"01-0{d}" for d in range(1, 6)}

    as_utc = fingerprint.row_hashes(pd.DataFrame({"d": data["date"].dt.tz_convert("UTC")}))
    assert np.array_equal(fingerprint.row_hashes(pd.DataFrame({"d": data["date"]})), as_utc)


def test_duckdb_timestamptz_dates_are_read(tmp_path):
    values = pd.Series(pd.to_datetime(["2003-03-01 23:00", "2003-03-02 01:00"]).tz_localize("UTC"))
    days, bad = parse_dates(values)
    assert not bad.any() and pd.Series(days).dt.strftime("%Y-%m-%d").tolist() == ["2003-03-01", "2003-03-02"]
    assert len(fingerprint.row_hashes(pd.DataFrame({"d": values}))) == 2


# -- keys as written -------------------------------------------------------------------------------------

def test_csv_keys_are_the_text_written():
    text = "year,date,shop_id,sales,attr1,attr2,attr3\n" + "".join(
        f"2003,2003-03-0{day},{key},1.0,1,2,3\n" for key in ("007", "7", "K1", "K1 ") for day in (1, 2))
    frame = files.read_file_table("input.csv", io.BytesIO(text.encode()), text_columns=("shop_id", "date"))
    valid, rejected, _ = rows.validate_chunk(frame, params())
    assert len(rejected) == 0
    assert sorted(valid["__key"].unique()) == ["007", "7", "K1", "K1 "]
    ordered, duplicated = rows.in_date_order(valid[valid["__key"] == "K1"].drop(columns="__key"), params())
    assert not duplicated.any()


def test_blank_keys_are_still_missing():
    valid, rejected, _ = rows.validate_chunk(chunk(["2003-03-01"] * 3, keys=["  ", "", "A"]), params())
    assert list(rejected["reason"]) == ["missing_key", "missing_key"] and valid["__key"].tolist() == ["A"]


# -- smaller holes ---------------------------------------------------------------------------------------

def test_infinite_feature_values_are_counted_as_coerced():
    frame = chunk(["2003-03-01", "2003-03-02", "2003-03-03"], attr1=[np.inf, -np.inf, 1.0],
                  attr2=["inf", "x", "2"])
    valid, _, counts = rows.validate_chunk(frame, params())
    assert counts["feature_values_coerced"] == 4  # two infinite numbers, "inf" and "x"
    assert valid["attr1"].tolist() == [0.0, 0.0, 1.0]


def test_an_empty_csv_is_a_clear_parameter_error(tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_text("")
    code = pipeline_run.main([f"--output={tmp_path / 'out'}", f"--input={path}", *IN_PROCESS])
    assert code == 2
    message = capsys.readouterr().err
    assert "--input" in message and "empty" in message and "ArrowInvalid" not in message


@pytest.mark.parametrize("query", [
    "SELECT year, date, shop_id, sales FROM dataset.table;",
    "SELECT year, date, shop_id, sales FROM dataset.table -- the sample",
    "-- daily sales\nSELECT year, date, shop_id, sales FROM dataset.table ;  -- done",
], ids=["semicolon", "trailing-comment", "both"])
def test_a_query_ending_in_a_semicolon_or_a_comment_is_accepted(query):
    assert local_query.duckdb_columns(query) == ["year", "date", "shop_id", "sales"]
    sample_keys = sample_data.generate()["shop_id"].nunique()
    assert source.distinct_keys_at_most(dataclasses.replace(params(), query=query, input=None), "duckdb",
                                        100) == sample_keys


def test_more_than_one_statement_is_refused():
    from pipeline.params.declare import ParameterError

    with pytest.raises(ParameterError, match="one SELECT statement"):
        local_query.duckdb_columns("SELECT 1 AS a; SELECT 2 AS a")


# -- runs that must not replace the published outputs --------------------------------------------------

def published_run(tmp_path) -> tuple[str, dict]:
    data = make_rows({"A": [2001, 2002, 2003], "B": [2001, 2002, 2003]}, days=5)
    path = tmp_path / "good.parquet"
    data.to_parquet(path, index=False)
    output = str(tmp_path / "out")
    return output, run_pipeline(output, f"--input={path}", "--model=ridge", "--window_size=2")


def test_too_many_rejected_rows_fail_the_run_and_keep_the_published_outputs(tmp_path, capsys):
    output, first = published_run(tmp_path)
    data = make_rows({"A": [2001, 2002, 2003], "B": [2001, 2002, 2003]}, days=5)
    data["date"] = data["date"].astype(str)
    data.loc[data.index[:20], "date"] = "not a date"  # 20 of 30 rows
    path = tmp_path / "bad.parquet"
    data.to_parquet(path, index=False)
    code = pipeline_run.main([f"--output={output}", f"--input={path}", "--model=ridge", "--window_size=2",
                              "--run_id=second", "--max_rejected_rate=0.4", *IN_PROCESS])
    assert code == 1
    message = capsys.readouterr().err
    assert "20 of 30 rows were rejected" in message and "--max_rejected_rate=0.4" in message
    assert "bad_date: 20" in message and "Nothing was published" in message
    assert read_summary(output)["run_id"] == first["run_id"]  # the previous outputs stay published
    with open(f"{output}/_staging/second/summary.json") as handle:  # this run's, written in full
        assert json.load(handle)["rows_rejected"] == 20


def test_a_run_that_trains_nothing_fails_and_keeps_the_published_outputs(tmp_path, capsys):
    output, first = published_run(tmp_path)
    path = tmp_path / "thin.parquet"
    make_rows({"A": [2001]}, days=5).to_parquet(path, index=False)  # one period: no window to fit
    code = pipeline_run.main([f"--output={output}", f"--input={path}", "--model=ridge", "--window_size=2",
                              "--run_id=second", *IN_PROCESS])
    assert code == 1
    message = capsys.readouterr().err
    assert "no key x window was trained" in message and "Nothing was published" in message
    assert read_summary(output)["run_id"] == first["run_id"]
