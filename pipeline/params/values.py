"""`PipelineParams`: the parsed parameters as plain values, picklable to workers."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class PipelineParams:
    """Parsed, validated parameters (plain values; picklable to workers)."""

    query: str
    input: str | None
    source: str
    time_column: str
    date_column: str
    key_column: str
    target: str
    features: tuple[str, ...]
    window_size: int
    window_period: int
    test_periods: int
    min_train_rows: int
    model: str
    model_params: dict
    seed: int
    model_threads: int
    output: str
    output_format: str
    if_output_exists: str
    run_id: str
    plan_only: bool = False
    period: str = ""  # derive the period from the date: year, quarter, month, week or day (pipeline.utils.periods)
    frequency: str = ""  # the spacing of a key's rows: D, W, M, Q, Y; empty = inferred per key
    window_mode: str = "sliding"  # or expanding: train on every earlier period (pipeline.stages.prepare.window_plan)
    window_anchor: str = "global"  # or key: windows end at each key's own last period
    n_windows: int = 0  # the last n backtest windows; 0 = every window that fits
    period_gaps_ok: bool = False  # an integer period column that looks like yyyymm(dd) is meant so
    season_length: int = 0  # the seasonal cycle in steps; 0 = from the frequency (periods.SEASON_LENGTHS)
    date_format: str = ""  # strptime format of text dates; empty = inferred per column (pipeline.stages.prepare.dates)
    quiet: bool = False
    json: bool = False  # print summary.json at the end of a local run (for scripts)
    model_dir: str = ""
    # robustness (issue 5)
    min_period: int = 0
    max_period: int = 99_999_999
    group_timeout_s: float = 0.0
    max_failure_rate: float = 0.05
    max_key_rows: int = 50_000_000  # a key over either limit is refused before its fits (pipeline.stages.prepare.key_size)
    max_key_bytes: int = 4_000_000_000
    max_rejected_rate: float = 0.5
    fan_out: str = "auto"  # spread the fits by key x window (pipeline.stages.prepare.fanout)
    input_table: str | None = None
    bq_read_method: str = "DIRECT_READ"
    bq_temp_dataset: str | None = None
    bq_query_priority: str = "BATCH"
    output_table: str | None = None
    metrics_table: str | None = None
    ledger_table: str | None = None
    rejected_table: str | None = None
    write_disposition: str = "WRITE_APPEND"
    bq_write_method: str = "FILE_LOADS"
    if_run_exists: str = "fail"
    bq_temp_location: str | None = None
    # feature generation
    calendar_features: tuple[str, ...] = ()
    holiday_calendar: str = "fr"
    lags: tuple[int, ...] = ()  # in steps of the key's frequency (pipeline.stages.prepare.target_history)
    rolling_means: tuple[int, ...] = ()
    lag_days: tuple[int, ...] = ()
    rolling_mean_days: tuple[int, ...] = ()
    check_leakage: bool = False
    # hyperparameter search
    param_grid: Any = None
    search: str = "grid"
    n_configs: int = 10
    validation_periods: int = 1
    search_batch_size: int = 16
    # several models: the best one per key (issue 15)
    select_metric: str = "mase"
    select: str = "auto"
    fallback_model: str = ""
    selection_table: str | None = None
    # forecast of future periods, intervals (issue 15)
    forecast: bool = False
    forecast_table: str | None = None
    interval_levels: tuple[int, ...] = ()
    interval_method: str = "conformal"

    @property
    def train_periods(self) -> int:
        return self.window_size - self.test_periods

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns read from the source (with --period the period comes from the date)."""
        period = () if self.period else (self.time_column,)
        return (self.key_column, *period, self.date_column, self.target, *self.features)

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["features"] = list(self.features)
        return out
