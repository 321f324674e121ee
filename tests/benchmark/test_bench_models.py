"""The benchmark's per-model mode (`make bench-models`, issue 17) runs the bare loop and the pipeline
on the same data and reports ours / bare per model. (Speed itself is only measured by `make bench`.)"""

from __future__ import annotations

import glob

import pytest

from bench import run_bench
from pipeline.models import registry


def test_models_mode_compares_ours_with_the_bare_loop_per_model(tmp_path, monkeypatch, capsys):
    # A small dataset in place of the 20 shops x 16 years, in a scratch directory.
    monkeypatch.setattr(run_bench, "DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(run_bench, "RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(run_bench, "MODELS_SHOPS", 2)
    monkeypatch.setattr(run_bench, "MODELS_YEARS", 4)
    assert run_bench.main(["--models=ridge", "--repeats=1", "--workers=1"]) == 0

    table = capsys.readouterr().out
    (row,) = [line for line in table.splitlines() if line.startswith("| ridge |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    bare_wall, ours_wall, ratio = float(cells[1]), float(cells[2]), float(cells[3].strip("*"))
    # The table shows seconds to 0.1 and the ratio to 0.01: the ratio of the shown seconds may differ
    # from the shown ratio by what that rounding allows, and no more.
    rounding = 0.05 / (bare_wall - 0.05) * (1 + ours_wall / bare_wall) + 0.005
    assert abs(ratio - ours_wall / bare_wall) <= rounding
    assert cells[-1].startswith("yes (1462 rows")  # 2 shops x (2015 + 2016), every day
    assert "2 shops x 4 years" in table and "4 key x windows per model" in table
    (written,) = glob.glob(str(tmp_path / "results" / "*-models.md"))
    assert open(written).read() == table.rstrip("\n") + "\n"


def test_models_mode_covers_every_registry_model_on_at_least_280_key_windows():
    assert run_bench.models_to_run("all") == list(registry.REGISTRY)
    assert run_bench.models_to_run("xgboost,ridge") == ["xgboost", "ridge"]
    for bad in ("lasso", "ridge,lasso", ","):
        with pytest.raises(ValueError, match="known: gbr"):
            run_bench.models_to_run(bad)
    # 3-year windows sliding by one year over the generated years, one per shop and start
    assert run_bench.MODELS_SHOPS * (run_bench.MODELS_YEARS - 2) >= 280
