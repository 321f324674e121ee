"""Outputs appear complete or not at all, and two runs never mix under one --output."""

from __future__ import annotations

import glob
import json
import os

import pytest

from pipeline.params.declare import ParameterError
from tests.helpers.faulty_models import faulty_model  # noqa: F401 (fixture)
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline

OUTPUTS = ("predictions", "metrics", "ledger", "rejected_rows")
SUMMARY = "summary.json"


@pytest.fixture
def input_path(tmp_path):
    path = tmp_path / "input.parquet"
    make_rows({"A": [2001, 2002, 2003, 2004], "B": [2001, 2002, 2003, 2004]}, days=5).to_parquet(path)
    return str(path)


def final_files(output) -> dict[str, list[str]]:
    """Every file under the final names (staging excluded)."""
    files = {name: sorted(os.listdir(os.path.join(output, name))) for name in OUTPUTS
             if os.path.isdir(os.path.join(output, name))}
    files["summary"] = [SUMMARY] if os.path.exists(os.path.join(output, SUMMARY)) else []
    return files


def run_ids(output) -> set[str]:
    ids = set()
    for name in OUTPUTS:
        frame = read_output(str(output), name)
        ids |= set(frame["run_id"])
    with open(os.path.join(output, SUMMARY)) as handle:
        ids.add(json.load(handle)["run_id"])
    return ids


def test_replace_swaps_in_the_new_run_completely(tmp_path, input_path):
    out = tmp_path / "out"
    run_pipeline(out, f"--input={input_path}", "--model=ridge", "--run_id=first", "--output_format=csv")
    assert run_ids(out) == {"first"}
    run_pipeline(out, f"--input={input_path}", "--model=ridge", "--run_id=second")
    assert run_ids(out) == {"second"}
    # No file of the first run (CSV) is left next to the second's (Parquet), and no staging remains.
    leftovers = glob.glob(str(out / "*" / "*.csv"))
    assert leftovers == [] and not os.path.exists(out / "_staging")


def test_fail_refuses_a_location_with_outputs(tmp_path, input_path):
    out = tmp_path / "out"
    run_pipeline(out, f"--input={input_path}", "--model=ridge", "--run_id=first")
    before = final_files(out)
    with pytest.raises(ParameterError) as error:
        run_pipeline(out, f"--input={input_path}", "--model=ridge", "--if_output_exists=fail")
    assert error.value.name == "output" and "--if_output_exists=replace" in str(error.value)
    assert final_files(out) == before and run_ids(out) == {"first"}


def test_a_crash_mid_run_leaves_the_previous_outputs_untouched(tmp_path, input_path, faulty_model):
    out = tmp_path / "out"
    run_pipeline(out, f"--input={input_path}", "--model=ridge", "--run_id=good")
    before = final_files(out)
    assert all(before.values())

    # The crash escapes every handler (it is not an Exception), as a killed worker would.
    with pytest.raises(BaseException) as crash:
        run_pipeline(out, f"--input={input_path}", "--model=faulty", "--run_id=crashed",
                     '--model_params={"crash_fraction": 0.5}')
    assert "simulated crash" in str(crash.value)

    assert final_files(out) == before
    assert run_ids(out) == {"good"}
    # Whatever the crashed run wrote is only under its own staging folder.
    crashed = [p for p in glob.glob(str(out / "**" / "*"), recursive=True)
               if "crashed" in p or os.path.basename(p).startswith("beam-temp")]
    assert all(os.path.relpath(p, out).startswith(os.path.join("_staging", "crashed")) for p in crashed)


def test_leftovers_of_a_crashed_attempt_with_the_same_run_id_are_not_published(tmp_path, input_path):
    out = tmp_path / "out"
    stale = out / "_staging" / "again" / "predictions"
    stale.mkdir(parents=True)
    (stale / "part-00007-of-00009.parquet").write_text("half-written by a crashed attempt")
    run_pipeline(out, f"--input={input_path}", "--model=ridge", "--run_id=again")
    assert "part-00007-of-00009.parquet" not in os.listdir(out / "predictions")
    assert run_ids(out) == {"again"}


def test_files_we_did_not_write_are_refused_by_name_and_survive_a_replace(tmp_path, input_path):
    """No commit record of ours: the launch is refused, naming the files, and deletes nothing (the old
    replace deleted every top-level file of the output folders). With a record, a replace deletes only
    what the record lists: the user's files stay."""
    out = tmp_path / "out"
    notes, roadmap = out / "metrics" / "q3_notes.txt", out / "plan" / "roadmap.md"
    for path, text in ((notes, "q3 numbers"), (roadmap, "the plan")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for mode in ("replace", "fail"):
        with pytest.raises(ParameterError) as refused:
            run_pipeline(out, f"--input={input_path}", "--model=ridge", f"--if_output_exists={mode}")
        assert refused.value.name == "output", mode
        assert "metrics/q3_notes.txt" in str(refused.value) and "plan/roadmap.md" in str(refused.value), mode
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["metrics/q3_notes.txt", "plan/roadmap.md"]

    notes.unlink(), roadmap.unlink()
    run_pipeline(out, f"--input={input_path}", "--model=ridge", "--run_id=first")
    notes.write_text("q3 numbers")
    roadmap.write_text("the plan")
    run_pipeline(out, f"--input={input_path}", "--model=ridge", "--run_id=second", "--plan_only")
    run_pipeline(out, f"--input={input_path}", "--model=ridge", "--run_id=third")
    assert notes.read_text() == "q3 numbers" and roadmap.read_text() == "the plan"
    assert run_ids(out) == {"third"}
    assert not os.path.exists(out / "plan.json") and os.listdir(out / "plan") == ["roadmap.md"]
