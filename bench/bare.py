"""The practical floor: a plain pandas + scikit-learn loop over keys x windows, on every core.

Same windows, same estimator, same per-group seed and the same feature coercion
as the pipeline, so its predictions must match the pipeline's. No baseline,
metrics, ledger or summary: only what a hand-written loop would do.

    python -m bench.bare --input data.parquet --output preds.parquet --model ridge --workers 2
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from pipeline.models import registry
from pipeline.stages.prepare.window_plan import WindowPlan

KEY, PERIOD, DATE, TARGET = "shop_id", "year", "date", "sales"
FEATURES = ["attr1", "attr2", "attr3"]
PLAN = WindowPlan(size=3, period=1, test_periods=1)
MIN_TRAIN_ROWS = 2


def load(path: str) -> pd.DataFrame:
    """The input with the pipeline's coercion (`coerce`)."""
    return coerce(pd.read_parquet(path, columns=[KEY, PERIOD, DATE, TARGET, *FEATURES]))


def coerce(data: pd.DataFrame) -> pd.DataFrame:
    """The pipeline's coercion: non-numeric or missing features become 0.0 (in place; returns `data`)."""
    for feature in FEATURES:
        data[feature] = pd.to_numeric(data[feature], errors="coerce").astype("float64").fillna(0.0)
    data[TARGET] = data[TARGET].astype("float64")
    data[DATE] = pd.to_datetime(data[DATE])
    return data


def fit_key(key: str, rows: pd.DataFrame, model: str, first: int, last: int, seed: int = 0) -> pd.DataFrame:
    """Every planned window of one key: fit on the training periods, predict the test period."""
    rows = rows.sort_values(DATE, kind="mergesort", ignore_index=True)
    periods = rows[PERIOD].to_numpy()
    x_all, y_all = rows[FEATURES].to_numpy(dtype=float), rows[TARGET].to_numpy(dtype=float)
    out = []
    for start in PLAN.starts_within(first, last):
        in_window = (periods >= start) & (periods <= PLAN.end_of(start))
        if len(np.unique(periods[in_window])) < PLAN.size:
            continue
        test = in_window & (periods >= PLAN.test_start(start))
        train = in_window & ~test
        if train.sum() < MIN_TRAIN_ROWS:
            continue
        estimator = registry.make_estimator(model, {}, seed=registry.group_seed(seed, key, start))
        estimator.fit(x_all[train], y_all[train])
        out.append(pd.DataFrame({KEY: key, DATE: rows[DATE].to_numpy()[test], "window_start": start,
                                 "predicted": estimator.predict(x_all[test]), "actual": y_all[test]}))
    return pd.concat(out, ignore_index=True) if out else None


def predict_all(data: pd.DataFrame, model: str, workers: int, seed: int = 0) -> pd.DataFrame:
    """All keys in parallel (joblib's process pool; one BLAS thread per worker by default)."""
    first, last = int(data[PERIOD].min()), int(data[PERIOD].max())
    parts = Parallel(n_jobs=workers)(
        delayed(fit_key)(str(key), rows, model, first, last, seed)
        for key, rows in data.groupby(KEY, sort=False))
    return pd.concat([p for p in parts if p is not None], ignore_index=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True, help="predictions .parquet")
    parser.add_argument("--model", default="gbr", choices=sorted(registry.REGISTRY))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    predict_all(load(args.input), args.model, args.workers).to_parquet(args.output, index=False)


if __name__ == "__main__":
    main()
