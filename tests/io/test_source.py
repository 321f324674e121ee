"""The article's query runs locally on the embedded sample and gives the same rows as the sample file."""

import pandas as pd

from pipeline.io.sources import local_query, sample_data
from pipeline.io.sources import source
from tests.helpers.pipeline_runs import run_pipeline, sorted_predictions

ARTICLE_QUERY = "SELECT year,date,shop_id,sales,attr1,attr2,attr3\nFROM dataset.table"


def test_article_query_returns_the_sample_rows():
    connection = local_query.duckdb_connection()
    queried = connection.execute(ARTICLE_QUERY).df()
    expected = sample_data.generate()
    assert list(queried.columns) == ["year", "date", "shop_id", "sales", "attr1", "attr2", "attr3"]
    key = ["shop_id", "date"]
    queried = queried.assign(date=pd.to_datetime(queried["date"])).sort_values(key, ignore_index=True)
    expected = expected.assign(date=pd.to_datetime(expected["date"])).sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(queried, expected, check_dtype=False)


def test_sample_has_the_promised_mess():
    data = sample_data.generate()
    future = data["year"] == sample_data.FIRST_YEAR + sample_data.YEARS
    # The rows to forecast: the first FUTURE_DAYS days after the last period, for every shop still open.
    assert data.loc[future, "sales"].isna().all() and future.sum() == 29 * sample_data.FUTURE_DAYS
    assert "S002" not in set(data.loc[future, "shop_id"])
    data = data.loc[~future]
    years = data.groupby("shop_id")["year"].nunique()
    assert data["shop_id"].nunique() >= 30 and years.max() == 6
    assert (years == 2).sum() == 1  # a shop with only two years
    first_dates = pd.to_datetime(data.groupby("shop_id")["date"].min())
    assert (first_dates.dt.month == 7).sum() == 1  # a shop opening mid-window
    assert data[["attr1", "attr2"]].isna().sum().sum() > 0
    assert (pd.to_numeric(data["attr3"], errors="coerce").isna() & data["attr3"].notna()).any()
    assert data["sales"].isna().sum() == 2 and data.duplicated(["shop_id", "date"]).sum() == 1


def test_query_and_file_sources_give_the_same_predictions(tmp_path):
    sample = tmp_path / "sample.parquet"
    sample_data.generate(n_shops=6).to_parquet(sample)
    # DuckDB reads no file itself (sandbox): --source=duckdb registers the --input files as input_files.
    query = "SELECT year, date, shop_id, sales, attr1, attr2, attr3 FROM input_files"
    common = ["--model=ridge"]
    from_file = run_pipeline(tmp_path / "file", f"--input={sample}", *common)
    from_query = run_pipeline(tmp_path / "query", f"--query={query}", f"--input={sample}", "--source=duckdb", *common)
    assert from_file["source"] == "file" and from_query["source"] == "duckdb"
    a, b = (sorted_predictions(tmp_path / name, lineage=False) for name in ("file", "query"))
    pd.testing.assert_frame_equal(a, b)
    assert from_file["rows_read"] == from_query["rows_read"] == len(pd.read_parquet(sample))


def test_csv_and_jsonl_inputs_and_csv_output(tmp_path):
    data = sample_data.generate(n_shops=5)
    for suffix in ("csv", "jsonl"):
        path = tmp_path / f"sample.{suffix}"
        sample_data.write(data, str(path))
        summary = run_pipeline(tmp_path / suffix, f"--input={path}", "--model=ridge", "--output_format=csv")
        assert summary["rows_read"] == len(data)
        assert summary["feature_values_coerced"] == summary_from_parquet(tmp_path, data)["feature_values_coerced"]
        predictions = pd.read_csv(next((tmp_path / suffix / "predictions").glob("part-*.csv")))
        assert {"shop_id", "date", "predicted", "actual"} <= set(predictions.columns)


def summary_from_parquet(tmp_path, data):
    path = tmp_path / "ref.parquet"
    if not path.exists():
        data.to_parquet(path)
    out = tmp_path / "ref_out"
    if not (out / "summary.json").exists():
        return run_pipeline(out, f"--input={path}", "--model=ridge")
    import json
    return json.loads((out / "summary.json").read_text())
