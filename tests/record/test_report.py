"""The report a person reads: every key in a sortable, searchable table whose rows show the key's plot,
each model drawn apart (chosen model per key), the baseline on predicted vs actual, coverage as a plot,
and huge values or math markup in keys drawn safely."""

from __future__ import annotations

import base64
import html.parser
import io

import numpy as np
import pandas as pd
import pytest

from pipeline.record import report, report_keys
from tests.helpers.pipeline_runs import make_rows, run_pipeline

HOSTILE_KEY = r"$\frac{$"


class Page(html.parser.HTMLParser):
    """The parts of the report a test checks: headings, images, the key table's rows, the templates."""

    def __init__(self):
        super().__init__()
        self.headings, self.images, self.key_rows, self.templates, self.scripts = [], [], [], [], 0
        self.key_header, self._cell, self._where = [], None, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._where.append((tag, attrs))
        if tag == "img":
            self.images.append(attrs)
        elif tag == "template":
            self.templates.append(attrs["id"])
        elif tag == "script":
            self.scripts += 1
        elif tag == "tr" and self._in("table", "keys") and self._in("tbody"):
            self.key_rows.append([])
        elif tag in ("td", "th") and self._in("table", "keys"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            (self.key_rows[-1] if tag == "td" else self.key_header).append(self._cell)
            self._cell = None
        while self._where and self._where.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if self._where and self._where[-1][0] == "h2":
            self.headings.append(data)
        if self._cell is not None:
            self._cell += data

    def _in(self, tag, element_id=None):
        return any(t == tag and (element_id is None or a.get("id") == element_id) for t, a in self._where)


def parse(document: str) -> Page:
    page = Page()
    page.feed(document)
    return page


def decoded(page: Page):
    from matplotlib import image

    prefix = "data:image/png;base64,"
    return [image.imread(io.BytesIO(base64.b64decode(i["src"][len(prefix):])), format="png") for i in page.images]


@pytest.fixture(scope="module")
def two_model_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    keys = [f"K{k}" for k in range(12)] + [HOSTILE_KEY]
    rows = make_rows({key: [2001, 2002, 2003, 2004, 2005] for key in keys}, days=12)
    future = rows[rows["year"] == 2005].assign(year=2006, sales=np.nan,
                                               date=lambda f: pd.to_datetime(f["date"]) + pd.DateOffset(years=1))
    future["date"] = future["date"].dt.date
    path = root / "input.parquet"
    pd.concat([rows, future], ignore_index=True).to_parquet(path, index=False)
    out = root / "out"
    summary = run_pipeline(out, f"--input={path}", "--model=ridge,gbr", '--model_params={"gbr": {"n_estimators": 10}}',
                           "--forecast", "--interval_levels=80", "--select_metric=rmse")
    return out, summary, keys


def test_the_key_table_lists_every_key_with_its_chosen_model(two_model_run):
    out, summary, keys = two_model_run
    page = parse((out / "report.html").read_text())
    assert page.key_header[:5] == ["shop_id", "model", "RMSE", "baseline RMSE", "ratio"]
    assert "coverage 80%" in page.key_header and "mean forecast" in page.key_header
    assert sorted(row[0] for row in page.key_rows) == sorted(keys)  # every key, the hostile one literally
    chosen = dict(zip(*[[row[i] for row in page.key_rows] for i in (0, 1)]))
    selection = pd.read_parquet(out / "selection")
    expected = selection[selection["chosen"]].set_index("shop_id")["model"].to_dict()
    assert chosen == expected
    assert len(page.templates) == len(keys) and page.scripts == 1  # a plot per key, and the sort/search script
    assert page.headings == ["RMSE per test period vs the naive baseline", "Scale-free metrics vs seasonal naive",
                             "Models compared (RMSE, out of sample)",
                             "Interval coverage (out of sample)", "Per-key RMSE",
                             "Predicted vs actual: best, median and worst keys (each key's chosen model)",
                             "Forecast: best, median and worst keys", "Every key", "Ledger"]
    for pixels in decoded(page):
        assert pixels.shape[0] > 100 and pixels.shape[1] > 300 and pixels.std() > 0
    text = (out / "report.html").read_text()
    assert "ridge, gbr; gbr: n_estimators=10" in text and "{}" not in text.split("<h2>")[0]


def test_huge_values_and_math_markup_in_keys_are_drawn():
    key_count = 5
    keys = [HOSTILE_KEY, "a$b", "K2", "K3", "K4"]
    metrics = pd.DataFrame({"shop_id": keys, "window_start": 1, "test_start": 3, "rows_test": 4, "model": "ridge",
                            "rmse": [1e300, 1.0, 2.0, 3.0, float("inf")], "baseline_rmse": [1e299, 2.0, 1.0, 3.0, 1.0]})
    dates = pd.date_range("2020-01-01", periods=4).date
    predictions = pd.concat([pd.DataFrame({"shop_id": key, "date": dates, "window_start": 1, "model": "ridge",
                                           "actual": [1e300, -1e300, 0.0, 5.0], "predicted": [1.0, 2.0, 1e308, 4.0],
                                           "baseline": 1.0}) for key in keys])
    ledger = pd.DataFrame({"status": ["trained"] * key_count, "reason": [""] * key_count})
    summary = {"run_id": "r", "parameters": {"key_column": "shop_id", "model": "ridge", "model_params": {}}}
    document = report.render(summary, None, metrics, lambda wanted: predictions[predictions["shop_id"].isin(wanted)],
                             ledger)
    page = parse(document)
    assert sorted(row[0] for row in page.key_rows) == sorted(keys)
    assert len(page.images) == 5 and all(p.std() > 0 for p in decoded(page))
    assert "ridge (default hyperparameters)" in document
    assert "<svg" in document and "nan" not in document.split("<svg", 1)[1].split("</svg>")[0]


def test_the_plotted_keys_are_bounded_for_many_keys():
    table = pd.DataFrame({"ratio": np.linspace(0.1, 2, 1000)}, index=[f"K{k}" for k in range(1000)])
    plotted = report_keys.plotted_keys(table, cap=10)
    assert plotted == [*[f"K{k}" for k in range(5)], *[f"K{k}" for k in range(995, 1000)]]


def test_many_monthly_periods_stay_readable():
    """48 monthly test periods: labelled 2021-03 (not 24254), drawn as lines, the table folded under it."""
    months = np.arange(24240, 24288)  # 2020-01 .. 2023-12 as month ordinals
    metrics = pd.DataFrame({"shop_id": "A", "window_start": months - 2, "test_start": months, "rows_test": 30,
                            "model": "ridge", "rmse": 1.0 + months % 5, "baseline_rmse": 2.0})
    summary = {"run_id": "r", "parameters": {"key_column": "shop_id", "model": "ridge", "period": "month"}}
    document = report.render(summary, None, metrics, lambda keys: pd.DataFrame(
        {"shop_id": [], "date": [], "window_start": [], "actual": [], "predicted": [], "baseline": []}),
        pd.DataFrame({"status": ["trained"], "reason": [""]}))
    period_part = document.split("<h2>RMSE per test period vs the naive baseline</h2>")[1].split("<h2>")[0]
    assert "<details><summary>the table (48 rows)</summary>" in period_part
    assert "<td>2020-01</td>" in period_part and "<td>2023-12</td>" in period_part and "24240" not in period_part
