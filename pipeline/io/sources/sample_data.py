"""The embedded sample: daily sales of many shops over several years, with realistic mess.

Deterministic for a given seed. The article's schema:
`year, date, shop_id, sales, attr1, attr2, attr3`, where attr3 is a STRING
column (as it often is in warehouses), so the article's `pd.to_numeric`
coercion has something to do.

The mess, on purpose:
- shop `S002` has only two years of history (never enough for a 3-year window);
- shop `S003` opens on 1 July of the third year (its first window is partial);
- a few attribute values are missing;
- a few attr3 values are not numbers ("n/a");
- two rows have no sales value and one row is delivered twice: those three are rejected rows;
- future rows: every shop still open (all but `S002`) has rows for the first FUTURE_DAYS days of the
  period after the last one (dates and attributes known, sales empty). With --forecast they are the
  rows to forecast; without it they are rejected (bad_target), like any empty target. They are drawn
  from a generator of their own and appended last, so the other rows are the same as without them.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

FIRST_YEAR = 2013
YEARS = 6
SHOPS = 30
FUTURE_DAYS = 31


def generate(n_shops: int = SHOPS, first_year: int = FIRST_YEAR, years: int = YEARS, seed: int = 7,
             messy: bool = True, future_days: int | None = None) -> pd.DataFrame:
    """The sample; `future_days` rows to forecast per open shop (default FUTURE_DAYS when `messy`, else
    none)."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(f"{first_year}-01-01", f"{first_year + years - 1}-12-31", freq="D")
    n_days = len(dates)
    day_of_year = dates.day_of_year.to_numpy()
    season = np.sin(2 * np.pi * day_of_year / 365.25)
    weekly = np.where(dates.day_of_week.to_numpy() >= 5, 1.0, 0.0)
    trend = (dates.year.to_numpy() - first_year).astype(float)

    frames = []
    for shop in range(n_shops):
        base = rng.uniform(50, 500)
        attr1 = rng.normal(10, 3, n_days).round(2)
        attr2 = rng.uniform(0, 1, n_days).round(3)
        attr3 = rng.integers(0, 20, n_days).astype(float)
        sales = (base + 0.05 * base * season + 0.1 * base * weekly + 3.0 * trend * (1 + shop % 3)
                 + 6.0 * attr1 + 60.0 * attr2 * (1 + shop % 2) + 3.0 * attr3
                 + rng.normal(0, 0.03 * base, n_days))
        frames.append(pd.DataFrame({
            "year": dates.year.astype("int64"),
            "date": dates.date,
            "shop_id": f"S{shop:03d}",
            "sales": np.round(np.maximum(sales, 0.0), 2),
            "attr1": attr1,
            "attr2": attr2,
            "attr3": [f"{v:g}" for v in attr3],
        }))
    data = pd.concat(frames, ignore_index=True)
    if messy and n_shops > 3:
        data = _add_mess(data, rng, first_year)
    future_days = (FUTURE_DAYS if messy else 0) if future_days is None else future_days
    if future_days:
        data = pd.concat([data, future_rows(data, first_year + years, future_days, seed)], ignore_index=True)
    return data.reset_index(drop=True)


def future_rows(data: pd.DataFrame, year: int, days: int, seed: int) -> pd.DataFrame:
    """The first `days` days of `year` for every shop observed in the year before: attributes drawn as
    the history's are (from a generator of their own), sales empty."""
    rng = np.random.default_rng([seed, year])
    dates = pd.date_range(f"{year}-01-01", periods=days, freq="D")
    shops = sorted(data.loc[data["year"] == year - 1, "shop_id"].unique())
    return pd.DataFrame({
        "year": np.repeat(np.int64(year), days * len(shops)),
        "date": np.tile(dates.date, len(shops)),
        "shop_id": np.repeat(shops, days),
        "sales": np.nan,
        "attr1": rng.normal(10, 3, days * len(shops)).round(2),
        "attr2": rng.uniform(0, 1, days * len(shops)).round(3),
        "attr3": [f"{v:g}" for v in rng.integers(0, 20, days * len(shops)).astype(float)],
    })


def _add_mess(data: pd.DataFrame, rng: np.random.Generator, first_year: int) -> pd.DataFrame:
    two_years_only = (data["shop_id"] == "S002") & (data["year"] >= first_year + 2)
    late_opening = (data["shop_id"] == "S003") & (pd.to_datetime(data["date"]) < f"{first_year + 2}-07-01")
    data = data.loc[~(two_years_only | late_opening)].copy()
    positions = rng.choice(len(data), size=40, replace=False)
    data["attr1"] = data["attr1"].astype("float64")
    data.iloc[positions[:15], data.columns.get_loc("attr1")] = np.nan
    data.iloc[positions[15:25], data.columns.get_loc("attr2")] = np.nan
    data.iloc[positions[25:32], data.columns.get_loc("attr3")] = "n/a"
    data.iloc[positions[32:38], data.columns.get_loc("attr3")] = None
    data.iloc[positions[38:], data.columns.get_loc("sales")] = np.nan
    return pd.concat([data, data.iloc[[positions[0]]]], ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the sample dataset (or a larger one) to a file.")
    parser.add_argument("path", help="output .parquet, .csv or .jsonl path")
    parser.add_argument("--shops", type=int, default=SHOPS)
    parser.add_argument("--years", type=int, default=YEARS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--clean", action="store_true", help="no deliberate mess")
    args = parser.parse_args()
    data = generate(args.shops, years=args.years, seed=args.seed, messy=not args.clean)
    write(data, args.path)
    print(f"wrote {len(data)} rows to {args.path}")


def write(data: pd.DataFrame, path: str) -> None:
    if path.endswith(".parquet"):
        data.to_parquet(path, index=False)
    elif path.endswith(".csv"):
        data.to_csv(path, index=False)
    elif path.endswith((".jsonl", ".json")):
        data.assign(date=data["date"].astype(str)).to_json(path, orient="records", lines=True)
    else:
        raise ValueError(f"unsupported extension: {path}")


if __name__ == "__main__":
    main()
