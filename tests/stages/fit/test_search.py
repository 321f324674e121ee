"""Hyperparameter search per key x window: the choice a direct computation makes, every score recorded,
no test-period information in the choice, reproducible random search, and bad grids refused."""

import dataclasses
import itertools
import json
import random
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from pipeline.stages.fit import search
from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline, sorted_predictions

FEATURES = ["attr1", "attr2", "attr3"]
ALPHAS = [0.001, 3.0, 30.0, 1000.0]
GRID = json.dumps({"alpha": ALPHAS})


def noisy_rows(seed=0):
    data = make_rows({"A": [2001, 2002, 2003, 2004], "B": [2001, 2002, 2003, 2004]}, days=30, seed=seed)
    rng = np.random.default_rng(seed)
    return data.assign(sales=data["sales"] + rng.normal(scale=2.0, size=len(data)))


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def direct_choice(data, shop, start):
    """Plain scikit-learn: fit on the first training year, score on the second, refit on both."""
    rows = data[data["shop_id"] == shop].sort_values("date")
    fit, validation = rows[rows["year"] == start], rows[rows["year"] == start + 1]
    scores = [rmse(validation["sales"], Ridge(alpha=a).fit(fit[FEATURES], fit["sales"]).predict(validation[FEATURES]))
              for a in ALPHAS]
    best = int(np.argmin(scores))
    train, test = rows[rows["year"].between(start, start + 1)], rows[rows["year"] == start + 2]
    predicted = Ridge(alpha=ALPHAS[best]).fit(train[FEATURES], train["sales"]).predict(test[FEATURES])
    return scores, best, predicted


@pytest.fixture(scope="module")
def grid_runs(tmp_path_factory):
    """The same grid search on clean data, and with the last year's actuals replaced by garbage."""
    base = tmp_path_factory.mktemp("search")
    data = noisy_rows()
    corrupted = data.assign(sales=np.where(data["year"] == 2004, 1e6 * np.cos(np.arange(len(data))), data["sales"]))
    runs = {}
    for name, frame in (("clean", data), ("corrupted", corrupted)):
        path = base / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        runs[name] = run_pipeline(base / name, f"--input={path}", "--model=ridge", f"--param_grid={GRID}",
                                  "--search_batch_size=3", "--run_id=search-test")
    return base, data, runs


def test_grid_search_picks_what_a_direct_computation_picks(grid_runs):
    base, data, runs = grid_runs
    out = str(base / "clean")
    scores = read_output(out, "search").sort_values(["shop_id", "window_start", "config_id"])
    metrics = read_output(out, "metrics").set_index(["shop_id", "window_start"])
    predictions = sorted_predictions(base / "clean")
    assert runs["clean"]["groups_trained"] == 4
    # every configuration's validation score, for every key x window
    assert len(scores) == 2 * 2 * len(ALPHAS) and scores["error_message"].eq("").all()
    assert sorted(scores.groupby(["shop_id", "window_start"])["chosen"].sum()) == [1, 1, 1, 1]
    for (shop, start), group in scores.groupby(["shop_id", "window_start"]):
        expected_scores, best, expected_predictions = direct_choice(data, shop, start)
        assert [json.loads(p)["alpha"] for p in group["model_params"]] == ALPHAS
        np.testing.assert_allclose(group["validation_rmse"], expected_scores, rtol=1e-9)
        assert list(group["chosen"]) == [i == best for i in range(len(ALPHAS))]
        assert (group["validation_start"] == start + 1).all() and (group["rows_fit"] == 30).all()
        assert metrics.loc[(shop, start), "config_id"] == best
        assert json.loads(metrics.loc[(shop, start), "model_params"]) == {"alpha": ALPHAS[best]}
        np.testing.assert_allclose(metrics.loc[(shop, start), "validation_rmse"], expected_scores[best])
        got = predictions[(predictions["shop_id"] == shop) & (predictions["window_start"] == start)]
        np.testing.assert_allclose(got["predicted"], expected_predictions, rtol=1e-9)
    ledger = read_output(out, "ledger")
    assert ledger["config_id"].notna().all() and (ledger["status"] == "trained").all()


def test_validation_never_touches_the_test_period(grid_runs):
    base, _, _ = grid_runs
    keep = ["shop_id", "window_start", "config_id", "validation_rmse", "chosen"]
    clean = read_output(str(base / "clean"), "search")[keep].sort_values(keep[:3], ignore_index=True)
    corrupted = read_output(str(base / "corrupted"), "search")[keep].sort_values(keep[:3], ignore_index=True)
    # 2004 is the test period of window 2002 and in no window's training periods: nothing changes
    pd.testing.assert_frame_equal(clean, corrupted)
    actual = {name: read_output(str(base / name), "predictions").query("year == 2004")["actual"].abs().max()
              for name in ("clean", "corrupted")}
    assert actual["corrupted"] > 1000 > actual["clean"]  # the corruption did reach the test rows


def test_scoring_refuses_test_period_rows():
    params = parse_args(["--model=ridge", f"--param_grid={GRID}"])[0]
    plan = search.WindowPlan.from_params(params)
    rows = make_rows({"A": [2001, 2002, 2003]}, days=5).drop(columns="shop_id")
    with pytest.raises(ValueError, match="test-period rows"):
        search.score_configs("A", 2001, rows.assign(date=pd.to_datetime(rows["date"])), [(0, {"alpha": 1.0})],
                             params, plan)


def test_random_search_is_reproducible_by_seed(tmp_path, write_parquet):
    grid = json.dumps({"alpha": [0.01, 0.1, 1, 10, 100], "fit_intercept": [True, False]})

    def configs(seed):
        return search.configurations(parse_args(["--model=ridge", f"--param_grid={grid}", "--search=random",
                                                 "--n_configs=4", f"--seed={seed}"])[0])

    assert configs(11) == configs(11) and len(configs(11)) == 4
    assert len({json.dumps(c, sort_keys=True) for c in configs(11)}) == 4  # without replacement
    assert any(configs(11) != configs(seed) for seed in (12, 13, 14))
    # the pipeline tries exactly those configurations (with generated features in the same pass)
    run_pipeline(tmp_path / "out", f"--input={write_parquet(noisy_rows(1))}", "--model=ridge",
                 f"--param_grid={grid}", "--search=random", "--n_configs=4", "--seed=11", "--lag_days=7",
                 "--calendar_features=day_of_week", "--check_leakage=true")
    scores = read_output(str(tmp_path / "out"), "search")
    recorded = scores.sort_values("config_id").drop_duplicates("config_id")["model_params"].map(json.loads)
    assert list(recorded) == configs(11)


def test_list_of_configurations_and_user_model(tmp_path, write_parquet, monkeypatch):
    monkeypatch.setenv("PIPELINE_MODEL_MODULES", "tests.helpers.user_models")
    configs = [{"fit_intercept": True}, {"fit_intercept": False}]
    run_pipeline(tmp_path / "out", f"--input={write_parquet(noisy_rows(2))}",
                 "--model=tests.helpers.user_models.probes:LeastSquares", f"--param_grid={json.dumps(configs)}")
    scores = read_output(str(tmp_path / "out"), "search")
    assert len(scores) == 4 * 2 and scores["validation_rmse"].notna().all()
    assert set(scores["model_params"].map(json.loads).map(json.dumps)) == set(map(json.dumps, configs))


@pytest.mark.parametrize("args, name", [
    (['--param_grid={"alpha": [1, 2'], "param_grid"),
    (['--param_grid={"alpha": []}'], "param_grid"),
    (['--param_grid=[1, 2]'], "param_grid"),
    (['--param_grid={"alpha": [1]}', "--validation_periods=2"], "validation_periods"),
    (['--param_grid={"alpha": [1], "no_such_parameter": [1]}'], "model_params"),
    (['--param_grid={"alpha": [-1]}'], "model_params"),
])
def test_bad_search_parameters_fail_before_work(args, name):
    with pytest.raises(ParameterError) as raised:
        parse_args(["--model=ridge", *args])
    assert raised.value.name == name


def _grid_params(grid: dict, *args: str):
    return parse_args(["--model=ridge", f"--param_grid={json.dumps(grid)}", *args])[0]


def test_configurations_by_index_are_the_grids_own_order():
    grid = {"alpha": [0.1, 1, 10], "fit_intercept": [True, False], "solver": ["auto", "svd"]}
    names = sorted(grid)
    every = [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]
    assert search.configurations(_grid_params(grid)) == every
    assert [search.configuration_at(grid, i) for i in range(len(every))] == every
    chosen = search.configurations(_grid_params(grid, "--search=random", "--n_configs=5", "--seed=3"))
    expected = sorted(random.Random(3).sample(range(len(every)), 5))  # the draw the search always made
    assert chosen == [every[i] for i in expected]


def test_random_search_over_a_huge_grid_draws_without_building_it():
    grid = {f"p{i}": list(range(100)) for i in range(4)}  # 10^8 configurations
    params = dataclasses.replace(_grid_params({"alpha": [1]}), param_grid=grid, search="random", n_configs=3)
    tracemalloc.start()
    try:
        chosen = search.configurations(params)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(chosen) == 3 and len({json.dumps(c) for c in chosen}) == 3
    assert all(set(c) == set(grid) for c in chosen)
    assert peak < 1_000_000, peak  # building the grid would take gigabytes


def test_a_million_configuration_grid_is_accepted_for_random_search():
    grid = json.dumps({"alpha": [i / 1000 + 0.001 for i in range(1000)], "tol": [i / 1e6 + 1e-6 for i in range(1000)]})
    params, _ = parse_args(["--model=ridge", f"--param_grid={grid}", "--search=random", "--n_configs=3"])
    assert search.grid_size(params.param_grid) == 10 ** 6 and len(search.configurations(params)) == 3


@pytest.mark.parametrize("args, name, cap", [
    (["--search=grid"], "param_grid", "MAX_CONFIGS_TRIED"),  # 10^6 > 10^4: every one fitted per key x window
    (["--search=random", f"--n_configs={search.MAX_CONFIGS_TRIED + 1}"], "n_configs", "MAX_CONFIGS_TRIED"),
])
def test_grid_caps_fail_before_work_naming_the_cap(args, name, cap):
    grid = json.dumps({"alpha": list(range(1, 1001)), "tol": [i / 1e6 + 1e-6 for i in range(1000)]})
    with pytest.raises(ParameterError) as raised:
        parse_args(["--model=ridge", f"--param_grid={grid}", *args])
    assert raised.value.name == name and cap in raised.value.allowed


def test_random_search_grid_size_is_capped():
    grid = {f"p{i}": list(range(1000)) for i in range(5)}  # 10^15 > MAX_GRID_SIZE
    params = dataclasses.replace(_grid_params({"alpha": [1]}), param_grid=grid, search="random")
    with pytest.raises(ParameterError) as raised:
        search.check_params(params)
    assert raised.value.name == "param_grid" and "MAX_GRID_SIZE" in raised.value.allowed
