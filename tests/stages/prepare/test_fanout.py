"""Fan-out of the key x window fits (pipeline/stages/prepare/fanout.py): the decision, the capped key count,
predictions that do not depend on the path in every mode, the decision taken from the data at run
time, and the local runner's stages (the common path still fused after the key shuffle).
The Dataflow graph is checked in tests/template/test_launch.py."""

from __future__ import annotations

import glob
import json
import os

import apache_beam as beam
import pandas as pd
import pytest
from apache_beam.runners.portability.fn_api_runner import fn_runner
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import run, runner
from pipeline.io.sources import source
from pipeline.stages.prepare import fanout
from tests.helpers.pipeline_runs import make_rows, read_output, run_pipeline
from tests.stages.decide.test_forecast import future

TIMING_COLUMNS = ("fit_seconds", "predict_seconds")  # the only columns that differ between two runs


def test_decision_threshold_is_four_keys_per_slot():
    assert fanout.decide(7, "auto", 2)["fanned_out"] and not fanout.decide(8, "auto", 2)["fanned_out"]
    assert fanout.decide(1, "auto", 2)["fanned_out"]  # one key: its windows on every slot
    assert not fanout.decide(3, "auto", 1)["fanned_out"]  # one slot: nothing to spread
    assert not fanout.decide(0, "auto", 2)["fanned_out"]  # no key: nothing to spread either
    unknown = fanout.decide(127, "auto", None)  # Dataflow without a worker count: DEFAULT_SLOTS
    assert unknown["fanned_out"] and unknown["threshold_keys"] == 4 * fanout.DEFAULT_SLOTS == 128
    assert not fanout.decide(128, "auto", None)["fanned_out"]
    assert fanout.decide(10_000, "always", 2)["fanned_out"] and not fanout.decide(2, "never", 2)["fanned_out"]
    assert fanout.decide(500, "auto", 2) == {"mode": "auto", "keys": 8, "threshold_keys": 8, "slots": 2,
                                             "fanned_out": False}  # counted up to the threshold only


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.lists(st.integers(0, 30), max_size=12), max_size=12), cap=st.integers(1, 12),
       splits=st.lists(st.integers(0, 12), max_size=4))
def test_key_count_is_exact_below_the_cap_and_the_cap_above(chunks, cap, splits):
    """As the pipeline counts: each chunk's distinct keys (at most `cap` of them), combined in any grouping."""
    count = fanout.CountKeysFn(cap)
    per_chunk = [list(dict.fromkeys(str(key) for key in chunk))[:cap] for chunk in chunks if chunk]
    bounds = sorted({0, len(per_chunk), *(min(s, len(per_chunk)) for s in splits)})
    accumulators = []
    for start, end in zip(bounds, bounds[1:]):  # several workers' partial accumulators
        acc = count.create_accumulator()
        for keys in per_chunk[start:end]:
            acc = count.add_input(acc, keys)
            assert len(acc) <= cap
        accumulators.append(acc)
    distinct = len({str(key) for chunk in chunks for key in chunk})
    assert count.extract_output(count.merge_accumulators(accumulators)) == min(distinct, cap)


def _data(path) -> str:
    """3 keys x 4 windows, and rows to forecast after each key's last period."""
    rows = make_rows({key: list(range(2001, 2007)) for key in "ABC"}, days=25, seed=4)
    rows = pd.concat([rows, *(future(key, 2007) for key in "ABC")], ignore_index=True)
    rows.to_parquet(path, index=False)
    return str(path)


def _outputs(out) -> dict[str, pd.DataFrame]:
    frames = {}
    for folder in sorted(glob.glob(os.path.join(str(out), "*", "part-*"))):
        name = os.path.basename(os.path.dirname(folder))
        if name not in frames:
            frame = read_output(str(out), name).drop(columns=list(TIMING_COLUMNS), errors="ignore")
            frames[name] = frame.sort_values(list(frame.columns), ignore_index=True)
    return frames


MODES = {
    "one model": ["--model=gbr"],
    "search": ["--model=ridge", '--param_grid={"alpha": [0.1, 10]}'],
    "several models, forecast, intervals": ["--model=ridge,gbr", "--forecast=true", "--interval_levels=80"],
    "plan only": ["--model=gbr", "--plan_only"],
}


@pytest.mark.parametrize("mode", MODES)
def test_fanned_out_or_not_the_outputs_are_the_same(tmp_path, mode):
    data = _data(tmp_path / "rows.parquet")
    documents, outputs = {}, {}
    for fan_out in ("always", "never"):
        out = tmp_path / fan_out
        documents[fan_out] = run_pipeline(out, f"--input={data}", *MODES[mode], f"--fan_out={fan_out}",
                                          "--run_id=same", "--seed=5", "--quiet=true")
        outputs[fan_out] = _outputs(out)
        assert documents[fan_out]["fan_out"]["fanned_out"] == (fan_out == "always")
        assert documents[fan_out]["fan_out"]["keys"] == 3
    spread, straight = outputs["always"], outputs["never"]
    assert set(spread) == set(straight) and len(spread) >= (1 if mode == "plan only" else 4)
    for name in straight:  # params_hash too: --fan_out is result-neutral
        assert len(straight[name]) > 0 or name == "rejected_rows", name
        pd.testing.assert_frame_equal(spread[name], straight[name], obj=name)
    if mode != "plan only":
        assert spread["predictions"]["params_hash"].nunique() == 1
        same = ("rows_read", "rows_used", "groups_planned", "groups_trained", "forecast", "intervals",
                "model_comparison")
        assert {k: documents["always"].get(k) for k in same} == {k: documents["never"].get(k) for k in same}
        # Sums over the predictions in another order: equal up to rounding.
        rmse = documents["never"]["rmse_by_test_period"]
        assert documents["always"]["rmse_by_test_period"] == pytest.approx(rmse, rel=1e-12, abs=0)


def test_the_decision_is_taken_from_the_data_at_run_time(tmp_path):
    """The same graph (2 slots: threshold 8 keys) fans out 2 keys and not 9; both paths' outputs end up
    in the same files (io.sinks.WriteFrames), in Parquet and in CSV."""
    two_slots = ["--direct_running_mode=multi_threading", "--direct_num_workers=2"]
    for keys, spread, output_format in ((2, True, "csv"), (9, False, "parquet")):
        path, out = tmp_path / f"rows_{keys}.parquet", tmp_path / f"out_{keys}"
        make_rows({f"K{k}": [2001, 2002, 2003, 2004] for k in range(keys)}, days=8).to_parquet(path, index=False)
        summary = run_pipeline(out, f"--input={path}", "--model=ridge", *two_slots, "--quiet=true",
                               f"--output_format={output_format}", in_process=False)
        assert summary["fan_out"] == {"mode": "auto", "keys": keys if spread else 8, "threshold_keys": 8,
                                      "slots": 2, "fanned_out": spread}
        assert summary["groups_trained"] == keys * 2
        assert len(read_output(str(out), "predictions")) == summary["predictions"] > 0
        assert len(read_output(str(out), "ledger")) == summary["groups_planned"] == keys * 2
        with open(out / "manifest.json") as handle:
            assert json.load(handle)  # the run published


def test_a_local_launch_that_counts_enough_keys_builds_the_straight_graph_alone(tmp_path):
    """The launcher of a local run counts the keys when it cheaply can (Parquet key column, DuckDB query):
    at or above the threshold the graph has no fan-out path (its stages cost a local run about half a
    second); below it, or uncounted, the data decides at run time as above."""
    paths = {}
    for keys in (2, 9):
        paths[keys] = tmp_path / f"rows_{keys}.parquet"
        make_rows({f"K{k}": [2001, 2002, 2003] for k in range(keys)}, days=4).to_parquet(paths[keys], index=False)
    params, _ = run.parse_args([f"--input={paths[9]}", "--output=unused"])
    assert source.distinct_keys_at_most(params, "file", 8) == 8
    assert source.distinct_keys_at_most(params, "file", 100) == 9
    sample, _ = run.parse_args(["--output=unused"])  # the embedded sample through DuckDB: 30 shops
    assert source.distinct_keys_at_most(sample, "duckdb", 8) == 8
    assert source.distinct_keys_at_most(sample, "duckdb", 1000) == 30

    def fans_out(path, *argv) -> bool:
        stages = _local_stages(["--direct_num_workers=2", *argv], str(path))
        return any("FannedOut" in name for stage in stages for name in stage)

    assert not fans_out(paths[9]) and fans_out(paths[2])
    assert fans_out(paths[9], "--fan_out=always") and not fans_out(paths[2], "--fan_out=never")


def _local_stages(argv: list[str], input_path: str = "unused.parquet") -> list[list[str]]:
    """The transforms of each stage the local runner (FnApiRunner) makes of the pipeline, fused as it runs them."""
    params, beam_args = run.parse_args([f"--input={input_path}", "--output=unused", *argv])
    pipeline = beam.Pipeline(options=runner.pipeline_options(beam_args))
    run.build(pipeline, params, "file")
    _, stages = fn_runner.FnApiRunner().create_stages(pipeline.to_runner_api())
    return [[transform.unique_name for transform in stage.transforms] for stage in stages]


def test_the_straight_path_stays_fused_after_the_key_shuffle():
    """The key count is taken before the key shuffle, like the period range: the stage that reads the
    shuffled keys (a grouping buffer, split by key between workers) merges, cuts and fits, and the
    fan-out path reads its own Reshuffle's grouping buffer."""
    stages = _local_stages(["--direct_num_workers=2"])

    def stage_of(suffix: str) -> list[str]:
        (found,) = [stage for stage in stages if any(name.endswith(suffix) for name in stage)]
        return found

    straight = stage_of("TrainAndPredict/Straight/Fit/ParDo(TrainAndPredictFn)/ParDo(TrainAndPredictFn)")
    assert straight[0] == "ValidateAndGroupByKey/GroupByKey/Read"  # its only input
    assert "ValidateAndGroupByKey/MergeKeyRows/ParDo(_MergeKeyRows)" in straight
    assert "CutWindows/Cut/ParDo(_CutWindowsFn)" in straight
    assert not [name for name in straight if name.endswith("/Read") and name != straight[0]]
    fanned = stage_of("TrainAndPredict/FannedOut/Fit/ParDo(TrainAndPredictFn)/ParDo(TrainAndPredictFn)")
    assert fanned[0] == "TrainAndPredict/Spread/Reshuffle/ReshufflePerKey/GroupByKey/Read"
    counted = stage_of("ValidateAndGroupByKey/CountKeys/KeyWithVoid")
    assert "ValidateAndGroupByKey/GroupByKey/Write" in counted  # counted where the keys are sent to the shuffle
