"""Cost of --group_timeout_s: fit + predict per key x window in-process vs in the deadline helper process.

    python -m bench.group_timeout_overhead [--groups 60] [--model gbr]

Prints the median seconds per group both ways, the helper's start-up time, and the
per-group overhead (pickling the arrays to the helper and the predictions back).
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd

from pipeline.run import parse_args
from pipeline.io.sources import sample_data
from pipeline.stages.fit import train
from pipeline.utils.deadline import DeadlineCaller
from pipeline.stages.prepare.windows import WindowPlan


def groups(n: int):
    data = sample_data.generate(n_shops=max(1, n // 4 + 1), messy=False)
    data["date"] = pd.to_datetime(data["date"])
    data["attr3"] = data["attr3"].astype(float)
    data = data.rename(columns={"shop_id": "__key"})
    plan = WindowPlan(3, 1, 1)
    out = []
    for key, rows in data.groupby("__key"):
        for start in plan.starts_within(rows["year"].min(), rows["year"].max()):
            out.append((key, start, rows[(rows["year"] >= start) & (rows["year"] <= plan.end_of(start))]))
    return out[:n], plan


def timed(items, params, plan, caller):
    """Per group, alternately in-process and in the helper, so machine load hits both alike."""
    inline, helper = [], []
    for key, start, window in items:
        window = window.drop(columns="__key")
        for deadline, durations in ((None, inline), (caller, helper)):
            began = time.perf_counter()
            result = train.train_and_predict(key, start, window, params, plan, deadline)
            durations.append(time.perf_counter() - began)
            assert result.ledger["status"] == "trained", result.ledger
    return inline, helper


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=60)
    parser.add_argument("--model", default="gbr")
    args = parser.parse_args()
    params, _ = parse_args([f"--model={args.model}", "--group_timeout_s=600"])
    items, plan = groups(args.groups)
    caller = DeadlineCaller(params.group_timeout_s)
    began = time.perf_counter()
    caller.start()
    startup = time.perf_counter() - began
    try:
        inline, helper = timed(items, params, plan, caller)
    finally:
        caller.stop()
    rows = statistics.median(len(w) for _, _, w in items)
    print(f"{len(items)} groups of ~{rows:.0f} rows, model {args.model}")
    print(f"helper start-up: {startup:.2f} s (once per DoFn instance, and after each timeout)")
    print(f"median per group in-process: {statistics.median(inline) * 1000:.1f} ms")
    print(f"median per group in helper:  {statistics.median(helper) * 1000:.1f} ms")
    print(f"overhead per group: {(statistics.median(helper) - statistics.median(inline)) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
