"""The best model per key: the choice recovers each key's model family, ties and untrained candidates
follow the rule, and the out-of-sample value of choosing uses earlier windows only."""

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from pipeline.stages import select
from pipeline.stages.windows import WindowPlan
from tests.helpers.pipeline_runs import read_output, run_pipeline

PERIODS = range(2001, 2006)


def family_rows(keys: int = 20, days: int = 40, seed: int = 0) -> pd.DataFrame:
    """Even keys: linear in the features (ridge's family); odd keys: an XOR of signs (trees' family)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(keys):
        for period in PERIODS:
            x = rng.uniform(-2, 2, size=(days, 3))
            if k % 2 == 0:
                y = 20 + 3 * x[:, 0] - 2 * x[:, 1] + x[:, 2]
            else:
                y = 20 + 6 * ((x[:, 0] > 0) ^ (x[:, 1] > 0))
            frames.append(pd.DataFrame({
                "year": period, "date": pd.date_range(f"{period}-01-01", periods=days, freq="D").date,
                "shop_id": f"K{k:02d}", "sales": y + rng.normal(scale=0.5, size=days),
                "attr1": x[:, 0], "attr2": x[:, 1], "attr3": x[:, 2]}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def family_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("select")
    path = base / "rows.parquet"
    family_rows().to_parquet(path, index=False)
    summary = run_pipeline(base / "out", f"--input={path}", "--model=ridge,gbr", "--run_id=sel",
                           "--select_metric=rmse")  # the rule checked below on metrics/ rmse
    return base / "out", summary


def test_the_choice_recovers_each_keys_family(family_run):
    out, summary = family_run
    selection = read_output(str(out), "selection")
    assert len(selection) == 40 and set(selection["windows_compared"]) == {3}
    chosen = selection[selection["chosen"]].set_index("shop_id")["model"]
    expected = pd.Series({f"K{k:02d}": "ridge" if k % 2 == 0 else "gbr" for k in range(20)})
    recovered = (chosen.reindex(expected.index) == expected).mean()
    assert recovered >= 0.9, chosen.to_dict()
    comparison = summary["model_comparison"]
    assert sum(comparison["keys_choosing"].values()) == 20 and comparison["keys_without_choice"] == 0
    assert "Models compared (RMSE, out of sample)" in (out / "report.html").read_text()
    # The mean score in selection/ is the mean of the metrics/ rmse over the compared windows.
    metrics = read_output(str(out), "metrics")
    means = metrics.groupby(["shop_id", "model"])["rmse"].mean()
    for row in selection.itertuples():
        assert math.isclose(row.score, means[(row.shop_id, row.model)])


def test_out_of_sample_comparison_equals_a_direct_computation(family_run):
    out, summary = family_run
    metrics = read_output(str(out), "metrics")
    predictions = read_output(str(out), "predictions")
    oos = summary["model_comparison"]["out_of_sample"]
    # Windows 2001, 2002, 2003 (size 3, one test period): window W is chosen on the windows before it.
    scored = []
    for (shop, start), _ in metrics.groupby(["shop_id", "window_start"]):
        earlier = metrics[(metrics["shop_id"] == shop) & (metrics["window_start"] < start)]
        if earlier.empty:
            continue
        means = earlier.groupby("model")["rmse"].mean()
        choice = "ridge" if means["ridge"] <= means["gbr"] else "gbr"
        rows = predictions[(predictions["shop_id"] == shop) & (predictions["window_start"] == start)]
        scored.append(rows.assign(label=rows["model"]))
        scored.append(rows[rows["model"] == choice].assign(label="choice"))
        scored.append(rows[rows["model"] == "ridge"].assign(label="baseline", predicted=lambda f: f["baseline"]))
    frame = pd.concat(scored)
    assert oos["windows_scored"] == 40  # 20 keys x windows 2002 and 2003
    for (label, period), rows in frame.groupby(["label", "year"]):
        direct = math.sqrt(((rows["predicted"] - rows["actual"]) ** 2).mean())
        assert math.isclose(oos["rmse_by_test_period"][label][str(period)], direct, rel_tol=1e-9)
    overall = oos["overall"]["rmse"]
    assert overall["choice"] <= max(overall["ridge"], overall["gbr"]) and overall["baseline"] > overall["choice"]


def _params(*argv):
    return parse_args(["--model=ridge,gbr", *argv])[0]


def _metric_rows(scores):
    return [{"window_start": start, "model": model, "rmse": value, "mae": value, "mape": None, "mase": value}
            for start, by_model in scores.items() for model, value in by_model.items()]


def _sums(starts, models=("ridge", "gbr")):
    one = {"2010": {"n": 1.0, "sse": 1.0, "sae": 1.0, "sape": 0.0, "n_pct": 0.0}}
    return [(start, model, one, one) for start in starts for model in models]


def test_ties_go_to_the_first_model_and_windows_need_every_candidate():
    params, plan = _params(), WindowPlan.from_params(_params())
    scores = {2001: {"ridge": 2.0, "gbr": 1.0}, 2002: {"ridge": 1.0, "gbr": 2.0}, 2003: {"ridge": 0.1}}
    rows, counters = select.select_key("K", _metric_rows(scores), _sums([2001, 2002]), params, plan)
    by_model = {row["model"]: row for row in rows}
    assert by_model["ridge"]["chosen"] and not by_model["gbr"]["chosen"]  # 1.5 each: ridge is first
    assert by_model["ridge"]["windows_compared"] == 2 and by_model["ridge"]["score"] == 1.5  # 2003 excluded
    gbr_first = parse_args(["--model=gbr,ridge"])[0]
    rows, _ = select.select_key("K", _metric_rows(scores), [], gbr_first, plan)
    assert [row["model"] for row in rows if row["chosen"]] == ["gbr"]


def test_no_comparable_window_means_no_choice_and_mape_none_is_not_a_score():
    params = _params("--select_metric=mape")
    rows, counters = select.select_key("K", _metric_rows({2001: {"ridge": 1.0, "gbr": 2.0}}), [], params,
                                       WindowPlan.from_params(params))
    assert not any(row["chosen"] for row in rows) and counters["keys_without_choice"] == 1
    assert all(row["score"] is None and row["windows_compared"] == 0 for row in rows)


def test_out_of_sample_choice_uses_only_windows_whose_tests_end_before():
    # Two test periods, windows one period apart: tests 2003-2004 (window 2001), 2004-2005 (2002),
    # 2005-2006 (2003). Window 2003 may be chosen on 2001 only (2002's test includes 2005); window 2002
    # on nothing (2001's test includes 2004), so it is not scored.
    params = _params("--window_size=4", "--test_periods=2")
    plan = WindowPlan.from_params(params)
    scores = {2001: {"ridge": 1.0, "gbr": 5.0}, 2002: {"ridge": 9.0, "gbr": 1.0}, 2003: {"ridge": 1.0, "gbr": 1.0}}
    starts = [2001, 2002, 2003]
    _, counters = select.select_key("K", _metric_rows(scores), _sums(starts), params, plan)
    assert counters["windows_scored"] == 1  # only 2003 (chosen on 2001: ridge)
    assert counters["sums"]["choice"]["2010"]["n"] == 1.0


def test_a_selection_table_needs_several_models():
    with pytest.raises(ParameterError) as error:
        parse_args(["--model=ridge", "--selection_table=ds.selection"])
    assert error.value.name == "selection_table"
