"""--interval_levels: split-conformal bands with the finite-sample correction, from earlier windows only,
and out-of-sample coverage that holds its promise on Gaussian noise of known variance."""

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.params.declare import ParameterError
from pipeline.run import parse_args
from pipeline.stages.fit import intervals
from pipeline.stages.prepare.windows import WindowPlan
from tests.helpers.pipeline_runs import read_output, run_pipeline

PERIODS = range(2001, 2008)
KEYS, DAYS, SIGMA = 30, 40, 2.0


def gaussian_rows(seed: int = 0, with_future: bool = False) -> pd.DataFrame:
    """Each key linear in attr1, attr2 plus N(0, SIGMA^2) noise: the same law in every period."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(KEYS):
        a, b = rng.uniform(1, 3, size=2)
        for period in [*PERIODS, *([2008] if with_future else [])]:
            x = rng.normal(size=(DAYS, 3))
            y = 50 + a * x[:, 0] - b * x[:, 1] + rng.normal(scale=SIGMA, size=DAYS)
            frames.append(pd.DataFrame({
                "year": period, "date": pd.date_range(f"{period}-01-01", periods=DAYS, freq="D").date,
                "shop_id": f"K{k:02d}", "sales": np.nan if period == 2008 else y,
                "attr1": x[:, 0], "attr2": x[:, 1], "attr3": x[:, 2]}))
    return pd.concat(frames, ignore_index=True)


def test_half_width_is_the_corrected_order_statistic_and_infinite_with_too_few_scores():
    scores = np.arange(1.0, 20.0)  # 1..19
    assert intervals.half_width(scores[:9], 90) == 9.0  # k = ceil(10 x 0.9) = 9: the largest of 9
    assert math.isinf(intervals.half_width(scores[:8], 90))  # k = ceil(9 x 0.9) = 9 > 8
    assert intervals.half_width(scores, 95) == 19.0  # n = 19 is the fewest for a finite 95% band
    assert math.isinf(intervals.half_width(scores[:18], 95))
    assert intervals.half_width(scores, 80) == 16.0  # k = ceil(20 x 0.8) = 16
    assert math.isinf(intervals.half_width(np.array([]), 50))


def _frame(start, periods, actual, predicted):
    return pd.DataFrame({"shop_id": "K", "year": periods, "window_start": start, "model": "ridge",
                         "actual": actual, "predicted": predicted})


def test_a_window_is_banded_from_earlier_windows_whose_tests_end_before_it_only():
    # Size 4, two test periods: tests 2003-2004 (window 2001), 2004-2005 (2002), 2005-2006 (2003).
    params = parse_args(["--window_size=4", "--test_periods=2", "--interval_levels=50"])[0]
    plan = WindowPlan.from_params(params)
    frames = [_frame(2001, [2003, 2004, 2004], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]),
              _frame(2002, [2004, 2005, 2005], [0.0, 0.0, 0.0], [100.0, 100.0, 100.0]),
              _frame(2003, [2005, 2006, 2006], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5])]
    metrics = [{"shop_id": "K", "window_start": s, "model": "ridge"} for s in (2001, 2002, 2003)]
    banded, rows = intervals.band_key_model(frames, metrics, params, plan)
    first, second, third = banded
    assert first["lower_50"].isna().all() and set(first["calibration_residuals"]) == {0}
    assert second["lower_50"].isna().all()  # window 2001's test (2004) does not end before 2004
    # Window 2003 uses window 2001 only (2002's test reaches 2005): scores 1, 2, 3, k = ceil(4 x 0.5) = 2.
    assert set(third["calibration_residuals"]) == {3}
    assert np.allclose(third["upper_50"] - third["predicted"], 2.0)
    assert np.allclose(third["predicted"] - third["lower_50"], 2.0)
    assert [row["coverage_50"] for row in rows] == [None, None, 1.0]  # |0 - 0.5| <= 2


@pytest.fixture(scope="module")
def gaussian_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("intervals")
    path = base / "rows.parquet"
    gaussian_rows(with_future=True).to_parquet(path, index=False)
    summary = run_pipeline(base / "out", f"--input={path}", "--model=ridge", "--interval_levels=80,95",
                           "--forecast=true", "--run_id=iv")
    return base / "out", summary


def test_out_of_sample_coverage_of_80_and_95_bands_is_within_5_points_of_nominal(gaussian_run):
    """Why ±5 points is meaningful here: 30 keys x 4 banded windows (2002-2005; window 2001 has nothing
    earlier) x 40 days = 4,800 rows per level. Rows of one key x window share one half-width estimated
    from 40-160 earlier residuals, so they are not independent: the standard error of the pooled coverage
    is about 1 point (120 clusters, per-cluster spread ~ sqrt(p(1-p)/n_calibration) <= 6 points, plus the
    binomial ~0.6 point), and the correction's upward bias is at most 1/(n+1) <= 2.5 points. With n >= 40
    this does not tell the corrected quantile from the plain one (the unit tests above check the
    correction and the earlier-windows rule); it catches a wrong level, scale or residual set."""
    out, summary = gaussian_run
    coverage = summary["intervals"]["coverage_out_of_sample"]["ridge"]
    for level in (80, 95):
        measured = coverage[str(level)]
        assert measured["rows"] == KEYS * 4 * DAYS and measured["rows_unbounded"] == KEYS * DAYS
        assert abs(measured["overall"] - level / 100) <= 0.05, (level, measured["overall"])
        assert measured["by_test_period"]["2003"] is None  # window 2001: no earlier window, no band
        assert all(abs(measured["by_test_period"][p] - level / 100) <= 0.08 for p in ("2004", "2005", "2006", "2007"))
    print({level: (coverage[str(level)]["overall"], coverage[str(level)]["by_test_period"]) for level in (80, 95)})
    # The same, recomputed from predictions/: the share of actuals inside each written band.
    predictions = read_output(str(out), "predictions")
    banded = predictions[predictions["lower_80"].notna()]
    inside = ((banded["actual"] >= banded["lower_80"]) & (banded["actual"] <= banded["upper_80"])).mean()
    assert math.isclose(inside, coverage["80"]["overall"])
    report = (out / "report.html").read_text()
    assert "Interval coverage (out of sample)" in report and "Forecast: best, median and worst keys" in report
    metrics = read_output(str(out), "metrics")
    assert metrics.loc[metrics["window_start"] == 2001, "coverage_95"].isna().all()
    assert metrics.loc[metrics["window_start"] > 2001, "coverage_95"].notna().all()


def test_forecast_bands_come_from_every_backtest_residual_of_the_key(gaussian_run):
    out, _ = gaussian_run
    predictions = read_output(str(out), "predictions")
    forecasts = read_output(str(out), "forecasts")
    assert len(forecasts) == KEYS * DAYS and forecasts["lower_95"].notna().all()
    for key, rows in forecasts.groupby("shop_id"):
        mine = predictions[predictions["shop_id"] == key]
        scores = np.sort(np.abs(mine["actual"] - mine["predicted"]).to_numpy())
        n = len(scores)
        assert set(rows["calibration_residuals"]) == {n}
        for level in (80, 95):
            q = scores[math.ceil((n + 1) * level / 100) - 1]
            assert np.allclose(rows[f"upper_{level}"] - rows["predicted"], q)
            assert np.allclose(rows["predicted"] - rows[f"lower_{level}"], q)


def test_interval_levels_are_percentages():
    for bad in ("0", "100", "80,80", "0.8"):
        with pytest.raises(ParameterError) as error:
            parse_args([f"--interval_levels={bad}"])
        assert error.value.name == "interval_levels"
