"""summary.json is strict JSON whatever the data: huge finite targets (x1e160) overflow the squared
errors to infinity, which JSON cannot hold; the document says null and why (issue 23 §7)."""

from __future__ import annotations

import json
import math

from pipeline.io.publishing import results
from tests.helpers.pipeline_runs import make_rows, run_pipeline


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_huge_finite_targets_keep_summary_json_strict(tmp_path, write_parquet):
    rows = make_rows({"A": [2001, 2002, 2003], "B": [2001, 2002, 2003]}, days=15, seed=1)
    rows = rows.assign(sales=rows["sales"] * 1e160)  # finite, but the squared errors overflow
    summary = run_pipeline(tmp_path / "out", f"--input={write_parquet(rows)}", "--model=ridge")
    assert summary["groups_trained"] == 2
    written = _strict((tmp_path / "out" / "summary.json").read_text())
    assert written["rmse_by_test_period"] == {"2003": None}
    assert "beyond the float range" in written[results.NON_FINITE]["rmse_by_test_period.2003"]
    assert written == summary  # what the run returns is what it wrote
    _strict((tmp_path / "out" / "manifest.json").read_text())


def test_finite_json_names_each_replaced_value():
    document = {"a": 1.5, "b": {"c": math.inf, "d": [1.0, math.nan]}, "e": "Infinity"}
    cleaned = results.finite_json(document)
    assert cleaned["a"] == 1.5 and cleaned["b"] == {"c": None, "d": [1.0, None]} and cleaned["e"] == "Infinity"
    assert set(cleaned[results.NON_FINITE]) == {"b.c", "b.d[1]"}
    assert "not a number" in cleaned[results.NON_FINITE]["b.d[1]"]
    assert results.finite_json({"a": 1.0}) == {"a": 1.0}  # nothing added when all is finite
