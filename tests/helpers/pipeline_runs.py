"""Run the real pipeline (Beam's own local runner) on small datasets, and read what it wrote."""

from __future__ import annotations

import glob
import os

import numpy as np
import pandas as pd

from pipeline import run as pipeline_run

LINEAGE_COLUMNS = ["run_id", "params_hash", "code_version"]
IN_PROCESS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def read_output(output_dir: str, name: str) -> pd.DataFrame:
    """All parts of one output folder as one DataFrame (Parquet or CSV)."""
    parts = sorted(glob.glob(os.path.join(output_dir, name, "part-*")))
    assert parts, f"no files in {output_dir}/{name}"
    if parts[0].endswith(".csv"):
        # round_trip: pandas 2's default float parser is off by 1 ulp on some of the exact decimals written
        return pd.concat([pd.read_csv(p, float_precision="round_trip") for p in parts], ignore_index=True)
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def run_pipeline(output_dir, *args: str, in_process: bool = True, report: bool = True) -> dict:
    """Runs the pipeline end to end and returns its summary; without `report`, report.html is not drawn."""
    argv = [f"--output={output_dir}", *args, *(IN_PROCESS if in_process else [])]
    return pipeline_run.run(argv, draw_report=report)


def sorted_predictions(output_dir, key="shop_id", date="date", lineage: bool = True) -> pd.DataFrame:
    """Predictions in a stable order; without the lineage columns when `lineage` is False."""
    frame = read_output(str(output_dir), "predictions")
    if not lineage:
        frame = frame.drop(columns=[c for c in LINEAGE_COLUMNS if c in frame])
    return frame.sort_values([key, "window_start", date], ignore_index=True)


def make_rows(spec: dict[str, list[int]], days: int = 20, seed: int = 0, first_year: int = 2001) -> pd.DataFrame:
    """Hand-made data: {key: [periods...]} with `days` daily rows per key and period.

    Periods are calendar years starting at `first_year` + (period - 1)... here the period
    value itself is the year, so tests can read windows directly.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for key, periods in spec.items():
        for period in periods:
            dates = pd.date_range(f"{period}-01-01", periods=days, freq="D")
            attr1 = rng.normal(size=days)
            frames.append(pd.DataFrame({
                "year": period, "date": dates.date, "shop_id": key,
                "sales": 10 + 3 * attr1 + rng.normal(scale=0.1, size=days),
                "attr1": attr1, "attr2": rng.normal(size=days), "attr3": rng.normal(size=days),
            }))
    return pd.concat(frames, ignore_index=True)
