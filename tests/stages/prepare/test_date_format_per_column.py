"""One date format per column for the whole run (issue 23 §2): each chunk of the input chooses the format
that reads the most of its values, and the run checks that every chunk chose the one that reads the most
values of the whole column; a first chunk that reads either way and a later one that reads day-first
only fail the run before any fit, naming the --date_format to pass."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from pipeline.run import parse_args
from pipeline.stages.prepare import dates, rows
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline

ARGS = ("--model=ridge", "--min_period=1990", "--max_period=2100")


def params(*args: str):
    return parse_args(["--input=unused.parquet", *args])[0]


def test_a_chunk_takes_the_format_that_reads_most_of_its_values():
    text = pd.Series(["03/04/2003", "25/04/2003", "26/04/2003", "2003-05-06"])
    votes = dates.format_votes(text)
    assert votes == {"%m/%d/%Y": (1, 0), "%d/%m/%Y": (3, 1), dates.ISO_FORMAT: (1, 2)}
    assert dates.choose_format(votes) == "%d/%m/%Y"
    # A tie goes to the earliest value's format, month first when it reads either way.
    assert dates.choose_format(dates.format_votes(pd.Series(["03/04/2003", "05/06/2003"]))) == "%m/%d/%Y"
    assert dates.format_votes(pd.Series(pd.to_datetime(["2003-03-01"]))) == {}  # not text: nothing to choose


def test_the_chunks_formats_agree_or_the_run_fails_naming_the_format():
    agreed = dates.AgreedFormatFn("day")
    ambiguous = ("%m/%d/%Y", {"%m/%d/%Y": (10, 0), "%d/%m/%Y": (10, 1)})
    day_first = ("%d/%m/%Y", {"%d/%m/%Y": (10, 0), "%m/%d/%Y": (4, 1)})
    iso = (dates.ISO_FORMAT, {dates.ISO_FORMAT: (10, 0)})

    def combine(*chunks):
        accumulators = [agreed.add_input(agreed.create_accumulator(), chunk) for chunk in chunks]
        return agreed.extract_output(agreed.merge_accumulators(accumulators))

    assert combine(iso, iso) == dates.ISO_FORMAT
    assert combine(day_first, day_first) == "%d/%m/%Y"
    assert combine() is None
    for order in ((ambiguous, day_first), (day_first, ambiguous)):  # whatever the order the chunks come in
        with pytest.raises(ValueError, match="--date_format=%d/%m/%Y") as raised:
            combine(*order)
        assert "day column" in str(raised.value) and "%m/%d/%Y" in str(raised.value)


def write_day_first(path, keys, day_of_month) -> pd.DataFrame:
    frame = make_rows({key: [2001, 2002, 2003, 2004] for key in keys}, days=6)
    frame["date"] = [f"{day_of_month + i % 6:02d}/03/{year}" for i, year in enumerate(frame["year"])]
    frame.to_csv(path, index=False)
    return frame


def test_an_ambiguous_first_chunk_and_a_day_first_later_one_fail_the_run_before_publishing(tmp_path):
    """Two files, so two chunks: the first's days are all 1-12 (either way), the second's 20-25."""
    write_day_first(tmp_path / "a.csv", ["A"], day_of_month=1)
    write_day_first(tmp_path / "b.csv", ["B"], day_of_month=20)
    pattern = str(tmp_path / "*.csv")
    with pytest.raises(Exception, match="--date_format=%d/%m/%Y"):
        run_pipeline(tmp_path / "out", f"--input={pattern}", *ARGS, report=False)
    assert not os.path.exists(tmp_path / "out" / "summary.json")

    summary = run_pipeline(tmp_path / "fixed", f"--input={pattern}", "--date_format=%d/%m/%Y", *ARGS,
                           report=False)
    assert summary["rows_rejected"] == 0 and summary["groups_trained"] > 0
    predicted = pd.to_datetime(read_output(str(tmp_path / "fixed"), "predictions")["date"])
    assert set(predicted.dt.month) == {3}  # every value read day-first: March


def test_chunks_that_agree_run_and_other_formats_are_rejected(tmp_path):
    first = write_day_first(tmp_path / "a.csv", ["A"], day_of_month=13)
    odd = first.iloc[[0]].assign(date="2003-03-01", shop_id="A", year=2005)
    pd.concat([first, odd]).to_csv(tmp_path / "a.csv", index=False)
    write_day_first(tmp_path / "b.csv", ["B"], day_of_month=20)
    summary = run_pipeline(tmp_path / "out", f"--input={tmp_path / '*.csv'}", *ARGS, report=False)
    assert summary["rows_rejected_by_reason"] == {"bad_date": 1}  # the ISO value in a day-first column
    assert summary["groups_trained"] > 0


def test_validation_reads_the_chunk_in_the_format_given():
    frame = pd.DataFrame({"year": 2003, "date": ["03/04/2003", "25/04/2003"], "shop_id": "A", "sales": 1.0,
                          "attr1": 1.0, "attr2": 2.0, "attr3": 3.0})
    valid, rejected, _ = rows.validate_chunk(frame, params(), "%m/%d/%Y")
    assert valid["date"].dt.strftime("%Y-%m-%d").tolist() == ["2003-03-04"] and len(rejected) == 1
