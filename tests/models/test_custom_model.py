"""Bring your own model: allow-listed user functions and estimators run end to end; anything else is
refused before work starts."""

import functools
import sys

import numpy as np
import pandas as pd
import pytest

from pipeline.models import custom_model
from pipeline import run as pipeline_run
from pipeline.params.declare import ParameterError
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline, sorted_predictions
from tests.helpers.user_models.article import learn_predict

ALLOWED = "tests.helpers.user_models"


@pytest.fixture
def allow_user_models(monkeypatch):
    monkeypatch.setenv(custom_model.ALLOW_LIST_ENV, ALLOWED)


def test_article_learn_predict_runs_through_a_one_line_adapter(tmp_path, write_parquet, allow_user_models,
                                                               monkeypatch):
    # The article's GradientBoostingRegressor() has no seed: near-ties between splits make two fits of
    # the same data differ. Pin one (in this process, where the in-memory runner fits) to compare exactly.
    import sklearn.ensemble

    monkeypatch.setattr(sklearn.ensemble, "GradientBoostingRegressor",
                        functools.partial(sklearn.ensemble.GradientBoostingRegressor, random_state=0))
    data = make_rows({"A": [2001, 2002, 2003, 2004], "B": [2001, 2002, 2003]}, days=25)
    summary = run_pipeline(tmp_path / "out", f"--input={write_parquet(data)}",
                           "--model=tests.helpers.user_models.article:adapter")
    assert summary["groups_trained"] == 3 and summary["groups_failed"] == 0
    predictions = sorted_predictions(tmp_path / "out")
    # The article's way: its function on (key, records of the window's three years).
    for (shop, start), got in predictions.groupby(["shop_id", "window_start"]):
        window = data[(data["shop_id"] == shop) & data["year"].between(start, start + 2)]
        expected = pd.DataFrame(learn_predict((shop, window.to_dict("records"))))
        expected = expected.assign(date=pd.to_datetime(expected["date"])).sort_values("date")
        assert list(pd.to_datetime(got["date"])) == list(expected["date"])
        np.testing.assert_allclose(got["predicted"], expected["predict"], rtol=1e-9)
        np.testing.assert_allclose(got["actual"], expected["sales"])
    ledger = read_output(str(tmp_path / "out"), "ledger")
    assert set(ledger["model"]) == {"tests.helpers.user_models.article:adapter"}


def test_user_estimator_class_and_function(tmp_path, write_parquet, allow_user_models):
    data = make_rows({"A": [2001, 2002, 2003]}, days=30)
    path = write_parquet(data)
    run_pipeline(tmp_path / "ols", f"--input={path}", "--model=tests.helpers.user_models.probes:LeastSquares")
    got = sorted_predictions(tmp_path / "ols")
    train, test = data[data["year"] < 2003], data[data["year"] == 2003]
    design = np.column_stack([train[["attr1", "attr2", "attr3"]], np.ones(len(train))])
    coef = np.linalg.lstsq(design, train["sales"], rcond=None)[0]
    expected = np.column_stack([test[["attr1", "attr2", "attr3"]], np.ones(len(test))]) @ coef
    np.testing.assert_allclose(got["predicted"], expected, rtol=1e-9)

    # The function is given no test actuals (it asserts so) and its result is used as is.
    summary = run_pipeline(tmp_path / "mean", f"--input={path}", "--model=tests.helpers.user_models.probes:mean_of_training")
    assert summary["groups_failed"] == 0
    got = sorted_predictions(tmp_path / "mean")
    np.testing.assert_allclose(got["predicted"], train["sales"].mean())


@pytest.mark.parametrize("spec, allow, why", [
    ("os:system", "", "module 'os' is not allowed"),
    ("os:system", ALLOWED, "module 'os' is not allowed"),
    ("tests.helpers.user_models.reexport:system", ALLOWED, "is defined in"),
    ("tests.helpers.user_models.missing:fit_predict", ALLOWED, "cannot be imported"),
    ("tests.helpers.user_models.probes:nothing_here", ALLOWED, "has no attribute"),
    ("tests.helpers.user_models.probes:__class__", ALLOWED, "neither a registry name"),
    ("__import__('os').system('true')", ALLOWED, "neither a registry name"),
    ("tests.helpers.user_models.probes:echo_feature;rm -rf /", ALLOWED, "neither a registry name"),
    ("tests.helpers.user_models.probes:np", ALLOWED, "is defined in"),
])
def test_refused_specs_name_model_and_allow_list(tmp_path, monkeypatch, spec, allow, why):
    monkeypatch.setenv(custom_model.ALLOW_LIST_ENV, allow)
    output = tmp_path / "out"
    with pytest.raises(ParameterError) as raised:
        pipeline_run.run([f"--output={output}", f"--model={spec}", "--direct_running_mode=in_memory"])
    message = str(raised.value)
    assert raised.value.name == "model" and why in message
    assert custom_model.ALLOW_LIST_ENV in message
    assert not output.exists()  # refused before any work


def test_allow_list_is_checked_before_any_import(monkeypatch, capsys):
    monkeypatch.delenv(custom_model.ALLOW_LIST_ENV, raising=False)
    sys.modules.pop("tests.helpers.outside_allowlist", None)
    code = pipeline_run.main(["--output=/nonexistent/never", "--model=tests.helpers.outside_allowlist:fit_predict"])
    assert code == 2
    assert "--model=" in capsys.readouterr().err
    assert "tests.helpers.outside_allowlist" not in sys.modules


def test_allow_list_parsing():
    assert custom_model.allowed_modules({custom_model.ALLOW_LIST_ENV: " a.b , c,,"}) == ("a.b", "c")
    assert custom_model.allowed_modules({}) == ()
