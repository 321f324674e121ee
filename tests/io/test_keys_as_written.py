"""Keys as the text written, by every reader of --input (issue 23 §2): "007" and "7" are two keys, and so
are "K1" and "K1 ", whether the file is CSV, JSONL or Parquet, or a local query reads it as input_files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipeline.io.sources import local_query
from pipeline.run import parse_args
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline

# Apart: a column of digits alone is what a type-guessing reader turns into integers.
KEY_SETS = {"leading-zero": ["007", "7"], "whitespace": ["K1", "K1 "]}
ARGS = ("--model=ridge", "--min_period=1990", "--max_period=2100")
QUERY = "SELECT year, date, shop_id, sales, attr1, attr2, attr3 FROM input_files"


def rows(keys: list[str]) -> pd.DataFrame:
    frame = make_rows({key: [2001, 2002, 2003, 2004] for key in keys}, days=6, seed=5)
    frame["date"] = frame["date"].astype(str)
    return frame


def write(frame: pd.DataFrame, path) -> str:
    if str(path).endswith(".csv"):
        frame.to_csv(path, index=False)  # 007 unquoted: a type-guessing reader makes it 7
    elif str(path).endswith(".jsonl"):
        with open(path, "w", encoding="utf-8") as handle:
            for record in frame.to_dict(orient="records"):
                key = record["shop_id"]  # "7" as a JSON number, the others as strings
                handle.write(json.dumps({**record, "shop_id": int(key) if key == "7" else key}) + "\n")
    else:
        frame.to_parquet(path, index=False)
    return str(path)


@pytest.mark.parametrize("keys", KEY_SETS.values(), ids=KEY_SETS.keys())
@pytest.mark.parametrize("file_name, extra", [
    ("input.csv", ()), ("input.jsonl", ()), ("input.parquet", ()),
    ("input.csv", ("--source=duckdb", f"--query={QUERY}")),
], ids=["csv", "jsonl", "parquet", "duckdb-over-csv"])
def test_keys_stay_as_written(tmp_path, file_name, extra, keys):
    data = rows(keys)
    path = write(data, tmp_path / file_name)
    summary = run_pipeline(tmp_path / "out", f"--input={path}", *ARGS, *extra, report=False)
    assert summary["rows_rejected"] == 0 and summary["rows_used"] == len(data)  # no key's rows duplicate another's
    predicted = read_output(str(tmp_path / "out"), "predictions")
    assert sorted(predicted["shop_id"].unique()) == sorted(keys)


def test_a_local_query_sees_the_key_as_text_and_the_date_as_typed(tmp_path):
    path = write(rows(KEY_SETS["leading-zero"]), tmp_path / "input.csv")
    params = parse_args([f"--input={path}", "--source=duckdb", f"--query={QUERY}"])[0]
    connection = local_query.duckdb_connection(params.input, local_query.query_text_columns(params))
    try:
        types = {row[0]: row[1] for row in connection.execute("DESCRIBE input_files").fetchall()}
        keys = [row[0] for row in connection.execute("SELECT DISTINCT shop_id FROM input_files").fetchall()]
    finally:
        connection.close()
    assert types["shop_id"] == "VARCHAR" and types["date"] == "DATE"  # date functions still work in a query
    assert sorted(keys) == KEY_SETS["leading-zero"]
