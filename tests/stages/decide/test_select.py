"""The best model per key: the choice recovers each key's model family, ties and untrained candidates
follow the rule, and the out-of-sample value of choosing uses earlier windows only."""

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from pipeline.stages.decide import select
from pipeline.utils.counters import SumCounters
from pipeline.stages.prepare.windows import WindowPlan
from tests.helpers.pipeline_runs import read_output, run_pipeline

PERIODS = range(2001, 2006)


def family_rows(keys: int = 20, days: int = 40, seed: int = 0, linear=lambda k: k % 2 == 0,
                noise: float = 0.5) -> pd.DataFrame:
    """Even keys (`linear`): linear in the features (ridge's family); odd keys: an XOR of signs (trees')."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(keys):
        for period in PERIODS:
            x = rng.uniform(-2, 2, size=(days, 3))
            if linear(k):
                y = 20 + 3 * x[:, 0] - 2 * x[:, 1] + x[:, 2]
            else:
                y = 20 + 6 * ((x[:, 0] > 0) ^ (x[:, 1] > 0))
            frames.append(pd.DataFrame({
                "year": period, "date": pd.date_range(f"{period}-01-01", periods=days, freq="D").date,
                "shop_id": f"K{k:02d}", "sales": y + rng.normal(scale=noise, size=days),
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
    # --select=auto (the default): the keys of the family the global choice does not fit chose by their own
    # evidence, the others kept the global choice.
    by = selection[selection["chosen"]].set_index("shop_id")["chosen_by"]
    assert set(selection["select_rule"]) == {"auto"}
    assert chosen[by == "global"].nunique() == 1 and chosen[by == "key"].nunique() == 1
    assert set(chosen[by == "global"]) != set(chosen[by == "key"])
    assert (by == "key").sum() >= 8 and (by == "global").sum() >= 8
    assert summary["model_comparison"]["keys_chosen_by"] == {"key": (by == "key").sum(),
                                                             "global": (by == "global").sum()}
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
        scored.append(rows[rows["model"] == choice].assign(label="choice_per_key"))
        scored.append(rows[rows["model"] == "ridge"].assign(label="baseline", predicted=lambda f: f["baseline"]))
    frame = pd.concat(scored)
    assert oos["windows_scored"] == 40  # 20 keys x windows 2002 and 2003
    for (label, period), rows in frame.groupby(["label", "year"]):
        direct = math.sqrt(((rows["predicted"] - rows["actual"]) ** 2).mean())
        assert math.isclose(oos["rmse_by_test_period"][label][str(period)], direct, rel_tol=1e-9)
    overall = oos["overall"]["rmse"]
    assert overall["choice_per_key"] <= max(overall["ridge"], overall["gbr"])
    assert overall["baseline"] > overall["choice_per_key"]


def _params(*argv):
    return parse_args(["--model=ridge,gbr", *argv])[0]


def _metric_rows(scores, plan=None):
    plan = plan or WindowPlan.from_params(_params())
    return [{"window_start": start, "window_end": plan.end_of(start), "test_start": plan.test_start(start),
             "model": model, "rmse": value, "mae": value, "mape": None, "mase": value}
            for start, by_model in scores.items() for model, value in by_model.items()]


def _pooled(params, *per_key_scores):
    """The pooled evidence of keys with these scores (as SelectModels sums it)."""
    totals = SumCounters().create_accumulator()
    for scores in per_key_scores:
        totals = SumCounters().add_input(totals, select.key_evidence(("K", {"metrics": _metric_rows(
            scores, WindowPlan.from_params(params))}), params))
    return totals


def _sums(starts, models=("ridge", "gbr")):
    one = {"2010": {"n": 1.0, "sse": 1.0, "sae": 1.0, "sape": 0.0, "n_pct": 0.0}}
    return [(start, model, one, one) for start in starts for model in models]


def test_ties_go_to_the_first_model_and_windows_need_every_candidate():
    params = _params("--select=per_key")
    scores = {2001: {"ridge": 2.0, "gbr": 1.0}, 2002: {"ridge": 1.0, "gbr": 2.0}, 2003: {"ridge": 0.1}}
    rows, counters = select.select_key("K", _metric_rows(scores), _sums([2001, 2002]), params, {})
    by_model = {row["model"]: row for row in rows}
    assert by_model["ridge"]["chosen"] and not by_model["gbr"]["chosen"]  # 1.5 each: ridge is first
    assert by_model["ridge"]["windows_compared"] == 2 and by_model["ridge"]["score"] == 1.5  # 2003 excluded
    gbr_first = parse_args(["--model=gbr,ridge", "--select=per_key"])[0]
    rows, _ = select.select_key("K", _metric_rows(scores), [], gbr_first, {})
    assert [row["model"] for row in rows if row["chosen"]] == ["gbr"]


def test_no_comparable_window_means_no_choice_and_mape_none_is_not_a_score():
    params = _params("--select_metric=mape")
    rows, counters = select.select_key("K", _metric_rows({2001: {"ridge": 1.0, "gbr": 2.0}}), [], params, {})
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
    _, counters = select.select_key("K", _metric_rows(scores, plan), _sums(starts), params,
                                    _pooled(params, scores))
    assert counters["windows_scored"] == 1  # only 2003 (chosen on 2001: ridge)
    assert counters["sums"]["choice_per_key"]["2010"]["n"] == 1.0


def test_a_selection_table_needs_several_models():
    with pytest.raises(ParameterError) as error:
        parse_args(["--model=ridge", "--selection_table=ds.selection"])
    assert error.value.name == "selection_table"


def test_auto_keeps_the_global_choice_when_every_key_follows_the_same_model(tmp_path):
    # Every key: the trees' family plus noise; gbr and random_forest are about as good on each, so a key's
    # own best is noise. per_key follows it; auto keeps the global choice for nearly every key.
    path = tmp_path / "rows.parquet"
    family_rows(keys=20, linear=lambda k: False, noise=1.0).to_parquet(path, index=False)
    summary = run_pipeline(tmp_path / "out", f"--input={path}", "--model=gbr,random_forest", "--run_id=same")
    selection = read_output(str(tmp_path / "out"), "selection")
    chosen = selection[selection["chosen"]].set_index("shop_id")
    own_best = selection.loc[selection.groupby("shop_id")["score"].idxmin()].set_index("shop_id")["model"]
    global_model = chosen["model"].mode()[0]
    assert (own_best != global_model).sum() >= 4  # per_key would follow the noise on these keys
    assert (chosen["chosen_by"] == "global").mean() >= 0.9 and (chosen["model"] == global_model).mean() >= 0.9
    assert summary["model_comparison"]["keys_chosen_by"]["global"] >= 18


def test_no_rule_is_scored_on_a_window_it_was_chosen_on():
    # Windows 2001, 2002 (size 3, one test period: tests 2003, 2004). Window 2002 is scored with choices
    # made on window 2001 alone: ridge for every rule (per_key: K's 2001; global: K's and L's 2001; auto:
    # one window is too little evidence, so the global choice). Had 2002's own scores been used, per_key
    # and global would pick gbr (K: ridge 5.5 vs gbr 2; pooled with L's 2002: gbr by far).
    params = _params()
    k_scores = {2001: {"ridge": 1.0, "gbr": 3.0}, 2002: {"ridge": 10.0, "gbr": 1.0}}
    l_scores = {2001: {"ridge": 1.0, "gbr": 2.0}, 2002: {"ridge": 100.0, "gbr": 1.0}}
    pooled = _pooled(params, k_scores, l_scores)
    ridge = {"2004": {"n": 1.0, "sse": 1.0, "sae": 1.0, "sape": 0.0, "n_pct": 0.0}}
    gbr = {"2004": {"n": 1.0, "sse": 100.0, "sae": 10.0, "sape": 0.0, "n_pct": 0.0}}
    sums = [(2001, "ridge", ridge, ridge), (2001, "gbr", gbr, gbr), (2002, "ridge", ridge, ridge),
            (2002, "gbr", gbr, gbr)]
    for rule in ("per_key", "global", "auto"):
        rows, counters = select.select_key("K", _metric_rows(k_scores), sums, _params(f"--select={rule}"), pooled)
        assert counters["windows_scored"] == 1
        for label in ("choice_per_key", "choice_global", "choice_auto"):
            assert counters["sums"][label] == ridge, label
    # On the full backtest (every window), the same evidence chooses gbr under per_key and global.
    for rule, by in (("per_key", "key"), ("global", "global"), ("auto", "global")):
        rows, _ = select.select_key("K", _metric_rows(k_scores), sums, _params(f"--select={rule}"), pooled)
        chosen = [row for row in rows if row["chosen"]]
        assert [(row["model"], row["chosen_by"], row["select_rule"]) for row in chosen] == [("gbr", by, rule)]


def test_auto_takes_a_keys_own_best_only_on_strong_evidence():
    from pipeline.stages.decide import selection_rules as rules
    models = ["ridge", "gbr"]
    strong = {1: {"ridge": 1.0, "gbr": 2.0}, 2: {"ridge": 1.0, "gbr": 2.0}}
    assert rules.auto_choice(strong, models, "gbr") == ("ridge", "key")
    one_window = {1: {"ridge": 1.0, "gbr": 2.0}}
    assert rules.auto_choice(one_window, models, "gbr") == ("gbr", "global")
    not_every = {1: {"ridge": 0.1, "gbr": 2.0}, 2: {"ridge": 2.1, "gbr": 2.0}}  # 10% better on average
    assert rules.auto_choice(not_every, models, "gbr") == ("gbr", "global")
    small_margin = {1: {"ridge": 1.95, "gbr": 2.0}, 2: {"ridge": 1.95, "gbr": 2.0}}  # every window, by 2.5%
    assert rules.auto_choice(small_margin, models, "gbr") == ("gbr", "global")


def test_a_selection_rule_outside_the_list_is_refused():
    with pytest.raises(ParameterError) as error:
        parse_args(["--model=ridge,gbr", "--select=best"])
    assert error.value.name == "select"


def _scaled_sums(error: float, scale: float, actual: float = 100.0) -> dict:
    """One test row's sums (period 2010) with this absolute error, MASE scale and actual."""
    return select.period_sums(np.array([actual]), np.array([actual + error]), np.array([2010]), np.array([scale]))


def test_global_and_auto_choose_by_mase_where_rmse_would_choose_the_other_model():
    # One large key (scale 1000) where ridge errs 5% less than gbr, three small keys (scale 1) where gbr errs
    # half as much as ridge. Pooled RMSE lets the large key decide (ridge); MASE weighs every key alike (gbr).
    # auto: the small keys' own evidence is strong (50% on every window), the large key's is not (5%).
    # Windows 2001-2003 (tests 2003-2005); 2002 and 2003 are scored out of sample.
    big = {start: {"ridge": 1.0, "gbr": 1.05} for start in (2001, 2002, 2003)}
    small = {start: {"ridge": 1.0, "gbr": 0.5} for start in (2001, 2002, 2003)}
    keys = [(big, 1000.0), (small, 1.0), (small, 1.0), (small, 1.0)]

    def metric_rows(scores, scale):
        return [{**row, "rmse": row["mase"] * scale} for row in _metric_rows(scores)]

    def sums(scores, scale):
        return [(start, model, _scaled_sums(score * scale, scale), _scaled_sums(2 * scale, scale))
                for start, by_model in scores.items() for model, score in by_model.items()]

    for metric, expected in (("rmse", "ridge"), ("mase", "gbr")):
        for rule in ("global", "auto"):
            params = _params(f"--select_metric={metric}", f"--select={rule}")
            evidence = SumCounters().create_accumulator()
            for scores, scale in keys:
                evidence = SumCounters().add_input(evidence, select.key_evidence(
                    ("K", {"metrics": metric_rows(scores, scale)}), params))
            totals = SumCounters().create_accumulator()
            for scores, scale in keys:
                rows, counters = select.select_key("K", metric_rows(scores, scale), sums(scores, scale), params,
                                                   evidence)
                totals = SumCounters().add_input(totals, counters)
                want = expected if rule == "global" or scale > 1 else "gbr"
                assert [row["model"] for row in rows if row["chosen"]] == [want], (metric, rule, scale)
            oos = select.comparison_document(totals, params)["out_of_sample"]
            # the out-of-sample table carries every metric, the scale-free ones pooled as summary.json pools them
            assert math.isclose(oos["overall"]["mase"]["gbr"], (1.05 * 2 + 0.5 * 6) / 8)  # 4 keys x 2 windows
            assert math.isclose(oos["overall"]["mase"]["ridge"], 1.0)
            assert math.isclose(oos["overall"]["mase"]["baseline"], 2.0)
            assert math.isclose(oos["overall"]["wape"]["ridge"], (1000 * 2 + 6) / (100 * 8))
            terms = [200 * 2000 / 2200] * 2 + [200 * 2 / 202] * 6  # |y - f| / (|y| + |f|), y = 100
            assert math.isclose(oos["overall"]["smape"]["baseline"], sum(terms) / 8)
            if rule == "global":
                assert oos["mase_by_test_period"]["choice_global"]["2010"] == oos["overall"]["mase"][expected]
    # the report's table is in the chosen metric, not RMSE
    from pipeline.record import model_comparison
    document = select.comparison_document(totals, params)
    parts = model_comparison.section({"model_comparison": document}, lambda rows, header: repr(rows))
    assert "Models compared (MASE, out of sample)" in "".join(parts)


def test_auto_needs_more_windows_of_evidence_with_more_candidates():
    from pipeline.stages.decide import selection_rules as rules
    # The key's own best is the best of k - 1 challengers: 2 windows with 2 candidates, 5 with 7, 6 with 11.
    assert [rules.auto_min_windows(k) for k in (2, 3, 7, 11)] == [2, 3, 5, 6]
    models = ["ridge", "gbr", "rf", "xgb", "theta", "ets", "naive"]
    strong = {start: {**dict.fromkeys(models, 2.0), "ridge": 1.0} for start in range(3)}
    # The same strong evidence that overrides among two candidates is not enough among seven on 3 windows...
    assert rules.auto_choice(strong, models[:2], "gbr") == ("ridge", "key")
    assert rules.auto_choice(strong, models, "gbr") == ("gbr", "global")
    # ...and is on 5.
    five = {start: {**dict.fromkeys(models, 2.0), "ridge": 1.0} for start in range(5)}
    assert rules.auto_choice(five, models, "gbr") == ("ridge", "key")
