"""The pipeline's predictions equal a straightforward pandas loop fitting the same estimator with the
same seed on the same rows; two runs are identical."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingRegressor

from pipeline.models import registry
from tests.helpers.pipeline_runs import make_rows, run_pipeline, sorted_predictions


def pandas_loop(data: pd.DataFrame, size=3, test_periods=1, n_estimators=20) -> pd.DataFrame:
    """The article's learn_predict, written as a plain loop over shops and windows."""
    features = ["attr1", "attr2", "attr3"]
    first, last = data["year"].min(), data["year"].max()
    out = []
    for shop, rows in data.groupby("shop_id"):
        for start in range(first, last - size + 2):
            window = rows[(rows["year"] >= start) & (rows["year"] < start + size)]
            if window["year"].nunique() < size:
                continue
            train = window[window["year"] < start + size - test_periods]
            test = window[window["year"] >= start + size - test_periods]
            model = GradientBoostingRegressor(n_estimators=n_estimators,
                                              random_state=registry.group_seed(0, shop, start))
            model.fit(train[features], train["sales"])
            out.append(pd.DataFrame({"shop_id": shop, "window_start": start, "date": test["date"],
                                     "predicted": model.predict(test[features])}))
    return pd.concat(out).sort_values(["shop_id", "window_start", "date"], ignore_index=True)


@pytest.fixture(scope="module")
def data():
    return make_rows({"A": [2001, 2002, 2003, 2004], "B": [2001, 2002, 2003, 2004], "C": [2002, 2003, 2004]},
                     days=30, seed=3)


def test_predictions_equal_a_pandas_loop(tmp_path, write_parquet, data):
    run_pipeline(tmp_path / "out", f"--input={write_parquet(data)}", "--model=gbr",
                 '--model_params={"n_estimators": 20}')
    ours = sorted_predictions(tmp_path / "out")
    reference = pandas_loop(data, n_estimators=20)
    assert len(ours) == len(reference) == 30 * 5  # A: 2 windows, B: 2, C: 1
    assert list(ours["shop_id"]) == list(reference["shop_id"])
    assert (pd.to_datetime(ours["date"]) == pd.to_datetime(reference["date"])).all()
    np.testing.assert_allclose(ours["predicted"], reference["predicted"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours["actual"], data.set_index(["shop_id", "date"]).loc[
        list(zip(ours["shop_id"], ours["date"])), "sales"].to_numpy())


def test_two_runs_are_identical(tmp_path, write_parquet, data):
    path = write_parquet(data)
    first = run_pipeline(tmp_path / "one", f"--input={path}", "--model=random_forest",
                         '--model_params={"n_estimators": 10}')
    second = run_pipeline(tmp_path / "two", f"--input={path}", "--model=random_forest",
                          '--model_params={"n_estimators": 10}')
    a, b = (sorted_predictions(tmp_path / name, lineage=False) for name in ("one", "two"))
    pd.testing.assert_frame_equal(a, b)
    assert first["run_id"] != second["run_id"]
    assert first["rmse_by_test_period"] == second["rmse_by_test_period"]
