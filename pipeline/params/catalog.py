"""Every user-facing parameter, declared once: the parser, the checks before any work, the README's
parameter table and the Flex Template's `metadata.json` are all derived from `PARAMS`."""

from __future__ import annotations

import os

from pipeline.params.declare import (BOOL_RE, BQ_DATASET_ALLOWED, BQ_DATASET_RE, BQ_QUERY_PRIORITIES,
                                      BQ_READ_METHODS, BQ_TABLE_ALLOWED, BQ_TABLE_RE, BQ_WRITE_METHODS,
                                      COLUMN_LIST_RE, COLUMN_RE, FAN_OUT_MODES, GCS_ALLOWED, GCS_PATH_OR_EMPTY_RE,
                                      GCS_PATH_RE, GROUP_BIGQUERY, GROUP_FEATURES, GROUP_MODEL, GROUP_OUTPUTS,
                                      GROUP_SEARCH, GROUP_SOURCE, GROUP_WINDOWS, IF_OUTPUT_EXISTS, IF_RUN_EXISTS,
                                      INT_RE, JSON_GRID_RE, JSON_OBJECT_RE, MODEL_DESCRIPTIONS, MODEL_NAMES,
                                      MODEL_RE, NON_BLANK_RE, NON_NEGATIVE_INT_RE, NON_NEGATIVE_NUMBER_RE,
                                      OUTPUT_FORMATS, POSITIVE_INT_RE, Param, RUN_ID_RE, SOURCES, WINDOW_SIZE_RE,
                                      WRITE_DISPOSITIONS, int_tuple, name_tuple, parse_bool)


def _model_allowed() -> str:
    modules = os.environ.get("PIPELINE_MODEL_MODULES", "") or "empty"
    return (f"one of {', '.join(MODEL_NAMES)}, or package.module:callable from a module in the "
            f"PIPELINE_MODEL_MODULES allow-list (now: {modules}); this is neither a registry name nor of that form")


PARAMS: tuple[Param, ...] = (
    # -- source ---------------------------------------------------------------
    Param("query", "SQL query",
          "BigQuery standard SQL returning one row per key and date, with the key, period, date, target and "
          "feature columns named below. Leave it empty when you give a BigQuery input table or input files. "
          "(A local run without a query uses the embedded sample, registered as dataset.table.)",
          GROUP_SOURCE, regex=NON_BLANK_RE, prefill=False,
          default="SELECT year, date, shop_id, sales, attr1, attr2, attr3 FROM dataset.table",
          example="SELECT year, date, shop_id, sales, attr1, attr2, attr3 FROM `my-project.sales.daily`"),
    Param("source", "Source",
          "Where the rows come from: auto (BigQuery on Dataflow, the embedded sample in DuckDB locally), "
          "bigquery (the SQL query or the input table), file (the input files) or duckdb (local runs).",
          GROUP_SOURCE, default="auto", choices=SOURCES, param_type="ENUM",
          choice_help=(("auto", "BigQuery on Dataflow"), ("bigquery", "the SQL query or the BigQuery input table"),
                       ("file", "Parquet, CSV or JSONL files in Cloud Storage"),
                       ("duckdb", "DuckDB on the embedded sample (for trying the template)"))),
    Param("input", "Input files",
          "Parquet, CSV or JSONL files to read instead of a query: one path or a glob in Cloud Storage "
          "(a local run also takes a local path).",
          GROUP_SOURCE, param_type="GCS_READ_FILE", regex=r"^[^\r\n]+\.(parquet|csv|jsonl|json)$",
          example="gs://my-bucket/sales/*.parquet", parent="source", parent_values=("file",)),
    Param("time_column", "Period column",
          "Column holding each row's integer period (a year, a month number, a week index); windows slide "
          "over its values. With the period from the date it names the derived column in the outputs (left at "
          "year, the column is named after the unit: year, quarter, month, week or day). A local run's default "
          "is the embedded sample's year.",
          GROUP_SOURCE, default="year", regex=COLUMN_RE, prefill=False, example="year"),
    Param("period", "Period from the date",
          "Derive each row's period from the date column instead of reading the period column: year, quarter, "
          "month, week (ISO weeks, Monday to Sunday) or day. Window size, window period and test periods then "
          "count in that unit, and outputs show periods as 2021, 2021-Q1, 2021-03, 2021-W05 or 2021-03-14. "
          "Empty: read the integer period column.",
          GROUP_SOURCE, default="", regex=r"^(year|quarter|month|week|day)?$",
          allowed="empty, or one of year, quarter, month, week, day", example="month"),
    Param("frequency", "Row frequency",
          "The spacing of a key's rows: D (daily), W (weekly), M (monthly), Q (quarterly) or Y (yearly). Lags, "
          "rolling means, horizons and seasons count in its steps. Empty: inferred from each key's dates (the "
          "unit of the period when they do not tell), and recorded in summary.json.",
          GROUP_SOURCE, default="", regex=r"^(D|W|M|Q|Y)?$", allowed="empty, or one of D, W, M, Q, Y",
          example="M"),
    Param("date_format", "Date format",
          "How the date column's text is written, as a strptime format (%d/%m/%Y). Empty: the format that "
          "reads the most of its values (ISO 8601 dates and times in any precision are one format; a tie goes "
          "to the first value's, month first); a run whose parts of the input would be read in different "
          "formats fails before any fit, naming the one to pass here. Every row is read with that one format; "
          "a row in another is rejected (bad_date). Integers are read as yyyymmdd.",
          GROUP_SOURCE, default="", regex=r"^([^%]*%[A-Za-z][^%]*)*$",
          allowed="empty, or a strptime format such as %d/%m/%Y", example="%d/%m/%Y"),
    Param("date_column", "Date column", "Date of each row; predictions are reported per key and date.",
          GROUP_SOURCE, default="date", regex=COLUMN_RE, required_on_dataflow=True, example="date"),
    Param("key_column", "Key column", "One model is trained per value of this column and window.",
          GROUP_SOURCE, default="shop_id", regex=COLUMN_RE, required_on_dataflow=True, example="shop_id"),
    Param("target", "Target column", "Numeric column to predict.", GROUP_SOURCE, default="sales",
          regex=COLUMN_RE, required_on_dataflow=True, example="sales"),
    Param("features", "Feature columns",
          "Comma-separated feature columns, no spaces, or none (or empty) for no feature columns: a table of "
          "key, date and target only, when features are generated (calendar features, lags, rolling means) or "
          "every model needs none. Non-numeric values become missing, and missing values become 0.0; both are "
          "counted in the run summary.",
          GROUP_SOURCE, default="attr1,attr2,attr3", regex=r"^([A-Za-z_][A-Za-z0-9_]*(,[A-Za-z_][A-Za-z0-9_]*)*)?$",
          allowed="none, empty, or comma-separated column names (letters, digits and _), no spaces",
          required_on_dataflow=True, example="attr1,attr2,attr3"),
    # -- windows --------------------------------------------------------------
    Param("window_size", "Window size", "Periods per sliding window (train + test), at least 2.",
          GROUP_WINDOWS, type=int, default=3, param_type="NUMBER", regex=WINDOW_SIZE_RE),
    Param("window_period", "Window period", "Periods between the starts of consecutive windows.",
          GROUP_WINDOWS, type=int, default=1, param_type="NUMBER", regex=POSITIVE_INT_RE),
    Param("test_periods", "Test periods",
          "The last N periods of each window are predicted; the earlier ones train the model.",
          GROUP_WINDOWS, type=int, default=1, param_type="NUMBER", regex=POSITIVE_INT_RE),
    Param("window_mode", "Window mode",
          "sliding: each window trains on its own periods only (window size minus test periods). expanding: "
          "each window trains on every earlier period of the key as well; the window size is then the "
          "minimum length of a window (train plus test periods).",
          GROUP_WINDOWS, default="sliding", choices=("sliding", "expanding"), param_type="ENUM",
          choice_help=(("sliding", "train on the window's own periods"),
                       ("expanding", "train on every earlier period of the key"))),
    Param("window_anchor", "Window anchor",
          "global: windows start on multiples of the window period inside the data's period range, the same "
          "for every key (every shop on calendar years). key: each key's last window ends at its own last "
          "observed period and the earlier ones step back by the window period, so series of different "
          "lengths and end dates are backtested just before their own forecast origin; a key too short for a "
          "window gets a ledger row (reason too_short_history).",
          GROUP_WINDOWS, default="global", choices=("global", "key"), param_type="ENUM",
          choice_help=(("global", "the same windows for every key"), ("key", "windows ending at each key's end"))),
    Param("n_windows", "Backtest windows",
          "How many backtest windows, the latest ones: with key anchoring the last N of each key (a key "
          "with a shorter history gets a too_short_history ledger row for each one missing); with global "
          "anchoring the last N of the grid. 0: every window that fits.",
          GROUP_WINDOWS, type=int, default=0, param_type="NUMBER", regex=NON_NEGATIVE_INT_RE),
    Param("min_train_rows", "Minimum training rows",
          "A key x window with fewer training rows is skipped (reason too_few_rows).",
          GROUP_WINDOWS, type=int, default=2, param_type="NUMBER", regex=POSITIVE_INT_RE),
    # -- model ----------------------------------------------------------------
    # A text field, not an ENUM: the Console's ENUM takes one choice, and several models are one value (ridge,gbr).
    Param("model", "Model",
          "Estimator trained per key x window: one name, or several comma-separated without spaces (ridge,gbr) "
          "fitted side by side, with the model hyperparameters and the hyperparameter grid keyed by model name. "
          "Names: " + "; ".join(f"{name} ({text.split(' (')[0]})" for name, text in MODEL_DESCRIPTIONS) + ". Your own model, "
          "package.module:callable, built into the image (README, \"Bring your own model\"), is named the same way.",
          GROUP_MODEL, default="gbr", choices=MODEL_NAMES, choice_help=MODEL_DESCRIPTIONS,
          open_choices=True, regex=MODEL_RE,
          allowed=_model_allowed),
    Param("model_params", "Model hyperparameters",
          'JSON object of estimator parameters, e.g. {"n_estimators": 200, "max_depth": 3}.',
          GROUP_MODEL, default="{}", regex=JSON_OBJECT_RE, example='{"n_estimators": 50}'),
    Param("seed", "Random seed",
          "Run seed; each model's seed derives from (seed, key, window), so results do not depend on "
          "worker count or order.", GROUP_MODEL, type=int, default=0, param_type="NUMBER",
          regex=NON_NEGATIVE_INT_RE),
    Param("model_threads", "Threads per model",
          "Threads each fit may use. 1 avoids oversubscription when every core runs its own fits.",
          GROUP_MODEL, type=int, default=1, param_type="NUMBER", regex=POSITIVE_INT_RE, hidden=True),
    Param("season_length", "Season length",
          "The seasonal cycle, in steps of the frequency, of the statistical models (seasonal_naive, theta, ets, "
          "arima, ces) and of MASE's seasonal naive scale. 0: from each key's frequency (12 monthly, 4 quarterly, "
          "7 daily, 52 weekly, 1 yearly); recorded in summary.json.",
          GROUP_MODEL, type=int, default=0, param_type="NUMBER", regex=NON_NEGATIVE_INT_RE),
    Param("fan_out", "Spread the fits",
          "How the key x window fits are spread over the workers: by key (the windows of a key fitted where the "
          "key's rows are, no extra shuffle) or by key x window (one more shuffle, of the windows). auto spreads "
          "them by key x window when there are fewer distinct keys than 4 per parallel slot (workers x cores; "
          "128 keys when the job gives no worker count). The predictions are the same either way; summary.json "
          "says which was used (fan_out).",
          GROUP_MODEL, default="auto", choices=FAN_OUT_MODES, param_type="ENUM",
          choice_help=(("auto", "by key x window when there are few keys for the parallel slots"),
                       ("always", "by key x window"), ("never", "by key")), hidden=True),
    # -- outputs --------------------------------------------------------------
    Param("output", "Output location",
          "Cloud Storage folder for this run's results: predictions/, metrics/, ledger/, rejected_rows/ and "
          "summary.json are written under it (a local run also takes a local folder).",
          GROUP_OUTPUTS, default="output", param_type="GCS_WRITE_FOLDER",
          regex=r"^[^\s]+$", example="gs://my-bucket/many-models/run1", required_on_dataflow=True,
          dataflow_regex=GCS_PATH_RE, dataflow_allowed=GCS_ALLOWED),
    Param("output_format", "Output format", "File format of the outputs.", GROUP_OUTPUTS,
          default="parquet", choices=OUTPUT_FORMATS, param_type="ENUM"),
    Param("if_output_exists", "If outputs exist",
          "What to do when the output folder holds an earlier run's results. replace: they stay until this "
          "run has written all of its own, then this run's replace them (a failed run deletes nothing). "
          "fail: refuse to start.",
          GROUP_OUTPUTS, default="replace", choices=IF_OUTPUT_EXISTS, param_type="ENUM",
          choice_help=(("replace", "replace them once this run has succeeded"), ("fail", "refuse to start"))),
    Param("run_id", "Run id", "Identifier written on every output row; generated when empty. Example: sales-2026-06",
          GROUP_OUTPUTS, default="", regex=RUN_ID_RE),
    # -- reproducibility and evaluation: fold plan dry run, saved models --------
    Param("plan_only", "Plan only",
          "Dry run: write the fold plan (key x window x train/test periods x row counts, would train or would "
          "skip and why), the number of fits and a cost estimate timed on a few sample fits, to the output "
          "folder; train no model.", GROUP_OUTPUTS, type=parse_bool, default=False,
          param_type="BOOLEAN", regex=BOOL_RE),
    Param("quiet", "Quiet",
          "A local run on a terminal shows its progress (key x window fits done of planned, rate, time left); "
          "true hides it. Jobs on Dataflow show theirs in the Dataflow console.", GROUP_OUTPUTS, type=parse_bool,
          default=False, param_type="BOOLEAN", regex=BOOL_RE, hidden=True),
    Param("json", "Print the summary as JSON",
          "A local run ends by printing a short table (each model's RMSE per test period next to the naive "
          "baseline's, the keys trained, skipped and failed) and the output paths; true prints summary.json "
          "instead, for scripts.", GROUP_OUTPUTS, type=parse_bool, default=False, param_type="BOOLEAN",
          regex=BOOL_RE, hidden=True),
    Param("model_dir", "Model directory",
          "Cloud Storage folder where each trained model is saved, as "
          "<folder>/<run id>/<key>/<window start>/model.joblib (XGBoost: model.json) with meta.json; no model "
          "is saved when empty (a local run also takes a local folder).",
          GROUP_OUTPUTS, default="", param_type="GCS_WRITE_FOLDER", regex=r"^[^\s]*$",
          example="gs://my-bucket/many-models/models", dataflow_regex=GCS_PATH_OR_EMPTY_RE,
          dataflow_allowed=GCS_ALLOWED),
    # -- robustness: plausible periods, per-group time limit, failure budget (issue 5) -------------
    Param("min_period", "First plausible period",
          "Rows whose period is below this are rejected (reason period_out_of_range).",
          GROUP_SOURCE, type=int, default=0, param_type="NUMBER", regex=INT_RE, hidden=True),
    Param("max_period", "Last plausible period",
          "Rows whose period is above this are rejected (reason period_out_of_range). Neither bound applies "
          "to periods derived from the date.",
          GROUP_SOURCE, type=int, default=99_999_999, param_type="NUMBER", regex=INT_RE, hidden=True),
    Param("period_gaps_ok", "Period gaps are meant",
          "An integer period column whose values look like yyyymm or yyyymmdd (202112 then 202201: a gap of 88 "
          "periods each new year) is refused before any fit, since windows would slide over the missing "
          "\"months\" 13 to 100; "
          "derive the periods from the date instead (Period from the date: month or day). "
          "true: the gaps are meant, run anyway.",
          GROUP_SOURCE, type=parse_bool, default=False, param_type="BOOLEAN", regex=BOOL_RE, hidden=True),
    Param("group_timeout_s", "Time limit per key x window",
          "Seconds one key x window may spend fitting and predicting; beyond it the fit is stopped and the "
          "group is recorded as failed (reason timeout). 0 = no limit. With a limit, fits run in a helper "
          "process per worker thread.",
          GROUP_MODEL, type=float, default=0.0, param_type="NUMBER", regex=NON_NEGATIVE_NUMBER_RE),
    Param("max_failure_rate", "Maximum failure rate",
          "The job fails, after writing every output, when more than this fraction of the key x windows it "
          "tried to fit failed (failed / (trained + failed)). 1 = never.",
          GROUP_MODEL, type=float, default=0.05, param_type="NUMBER", regex=NON_NEGATIVE_NUMBER_RE),
    Param("max_key_rows", "Most rows of one key",
          "A key with more rows than this (after validation) is refused before any of its fits: one worker holds "
          "a key's rows whole. It becomes a failed ledger row (reason key_too_large, with its rows and bytes); the "
          "plan dry run reports the largest key. 0 = no limit.",
          GROUP_MODEL, type=int, default=50_000_000, param_type="NUMBER", regex=NON_NEGATIVE_INT_RE, hidden=True),
    Param("max_key_bytes", "Most bytes of one key",
          "A key whose rows take more memory than this (bytes, as pandas holds them) is refused like one over "
          "the most rows of one key. 0 = no limit.",
          GROUP_MODEL, type=int, default=4_000_000_000, param_type="NUMBER", regex=NON_NEGATIVE_INT_RE,
          hidden=True),
    Param("max_rejected_rate", "Maximum rejected rate",
          "The job fails when more than this fraction of the rows read were rejected (1 = never), and so "
          "does a run that trains no key x window: after every output is written to the staging folder, "
          "and before any is published, so the previous outputs stay in place.",
          GROUP_MODEL, type=float, default=0.5, param_type="NUMBER", regex=NON_NEGATIVE_NUMBER_RE),
    # -- BigQuery source and sinks (pipeline/bigquery.py) -----------------------
    Param("input_table", "BigQuery input table",
          "BigQuery table to read instead of running a query (only the columns named here are read).",
          GROUP_BIGQUERY, param_type="BIGQUERY_TABLE", regex=BQ_TABLE_RE, allowed=BQ_TABLE_ALLOWED,
          example="my-project:dataset.table"),
    Param("bq_read_method", "BigQuery read method",
          "How BigQuery rows are read. DIRECT_READ: the BigQuery Storage Read API, no export files. EXPORT: an "
          "export job to Avro files in the BigQuery temporary files folder (or the job's temporary location).",
          GROUP_BIGQUERY, default="DIRECT_READ", choices=BQ_READ_METHODS, param_type="ENUM",
          parent="source", parent_values=("auto", "bigquery")),
    Param("bq_temp_dataset", "BigQuery temporary dataset",
          "Existing dataset where the query's results are kept while they are read (a temporary table is "
          "created there and removed after); when empty, Beam creates a temporary dataset in the query's "
          "location and removes it. The query's location itself is found by BigQuery from the tables it reads.",
          GROUP_BIGQUERY, default="", regex=BQ_DATASET_RE, allowed=BQ_DATASET_ALLOWED,
          example="my-project:scratch", parent="source", parent_values=("auto", "bigquery"), hidden=True),
    Param("bq_query_priority", "BigQuery query priority",
          "BATCH queues the query until BigQuery has idle capacity (it does not count towards the concurrent "
          "interactive query limit); INTERACTIVE runs it at once.",
          GROUP_BIGQUERY, default="BATCH", choices=BQ_QUERY_PRIORITIES, param_type="ENUM",
          parent="source", parent_values=("auto", "bigquery"), hidden=True),
    Param("output_table", "Predictions table",
          "BigQuery table for the predictions, partitioned by the date column (DAY) and clustered by the key; "
          "created if needed. When set, the metrics, ledger and rejected rows can go to BigQuery too.",
          GROUP_BIGQUERY, param_type="BIGQUERY_TABLE", regex=BQ_TABLE_RE, allowed=BQ_TABLE_ALLOWED,
          example="my-project:dataset.predictions"),
    Param("metrics_table", "Metrics table", "BigQuery table for the metrics per key x window.",
          GROUP_BIGQUERY, param_type="BIGQUERY_TABLE", regex=BQ_TABLE_RE, allowed=BQ_TABLE_ALLOWED,
          example="my-project:dataset.metrics", parent="output_table"),
    Param("ledger_table", "Ledger table", "BigQuery table for the ledger (trained/skipped/failed per key x window).",
          GROUP_BIGQUERY, param_type="BIGQUERY_TABLE", regex=BQ_TABLE_RE, allowed=BQ_TABLE_ALLOWED,
          example="my-project:dataset.ledger", parent="output_table"),
    Param("rejected_table", "Rejected rows table", "BigQuery table for the rejected input rows.",
          GROUP_BIGQUERY, param_type="BIGQUERY_TABLE", regex=BQ_TABLE_RE, allowed=BQ_TABLE_ALLOWED,
          example="my-project:dataset.rejected_rows", parent="output_table"),
    Param("write_disposition", "BigQuery write disposition",
          "WRITE_APPEND adds this run's rows; WRITE_TRUNCATE replaces the tables' contents; WRITE_EMPTY "
          "refuses non-empty tables. Tables are created if needed.",
          GROUP_BIGQUERY, default="WRITE_APPEND", choices=WRITE_DISPOSITIONS, param_type="ENUM",
          parent="output_table"),
    Param("bq_write_method", "BigQuery write method",
          "FILE_LOADS: batch load jobs (free, atomic per table). STREAMING_INSERTS: insertAll, appends only.",
          GROUP_BIGQUERY, default="FILE_LOADS", choices=BQ_WRITE_METHODS, param_type="ENUM",
          parent="output_table"),
    Param("if_run_exists", "If the run id has rows",
          "With WRITE_APPEND, when a target table already holds rows with this run id: fail (refuse to start) "
          "or replace (this job's rows replace them when it publishes, in one transaction over every table; "
          "nothing is deleted at launch).",
          GROUP_BIGQUERY, default="fail", choices=IF_RUN_EXISTS, param_type="ENUM", parent="output_table"),
    Param("bq_temp_location", "BigQuery temporary files",
          "Cloud Storage folder for the files of BigQuery load and export jobs; the job's temporary location "
          "when empty.",
          GROUP_BIGQUERY, default="", regex=r"^[^\s]+$", allowed="a gs:// prefix without spaces",
          example="gs://my-bucket/tmp/bq", param_type="GCS_WRITE_FOLDER", dataflow_regex=GCS_PATH_RE,
          dataflow_allowed=GCS_ALLOWED, hidden=True),
    # -- feature generation (in the same pass; leakage-safe) ---------------------
    Param("calendar_features", "Calendar features",
          "Comma-separated features generated from the date: day_of_week, day_of_year, month, holiday.",
          GROUP_FEATURES, type=name_tuple, default="", regex=r"^([a-z_]+(,[a-z_]+)*)?$", example="day_of_week,holiday",
          allowed="comma-separated names among day_of_week, day_of_year, month, holiday"),
    Param("holiday_calendar", "Holiday calendar",
          "Public holidays of the holiday calendar feature (bundled): fr (France) or us (United States).",
          GROUP_FEATURES, default="fr", choices=("fr", "us"), param_type="ENUM", parent="calendar_features",
          choice_help=(("fr", "France"), ("us", "United States"))),
    Param("lags", "Target lags (steps)",
          "Comma-separated lags in steps of the key's frequency (the frequency parameter): feature lag_<k> is the key's "
          "target k steps earlier, calendar-aware (lag_12 of 2021-03 is 2020-03 on monthly rows); a missing row "
          "makes it unknown, not the previous row. Test and forecast rows take the predictions of the earlier "
          "test rows (recursive horizon). Unknown values are missing for the models that accept them "
          "(hist_gbr, random_forest, xgboost), else the training mean of the column (counted).",
          GROUP_FEATURES, type=int_tuple, default="", regex=r"^([1-9][0-9]*(,[1-9][0-9]*)*)?$", example="1,2,12",
          allowed="comma-separated positive integers (steps)"),
    Param("rolling_means", "Target rolling means (steps)",
          "Comma-separated spans in steps of the key's frequency: feature rolling_mean_<w> is the mean of the "
          "key's known targets over the w steps before the row, with the same rules as the lags.",
          GROUP_FEATURES, type=int_tuple, default="", regex=r"^([1-9][0-9]*(,[1-9][0-9]*)*)?$", example="3,12",
          allowed="comma-separated positive integers (steps)"),
    Param("lag_days", "Target lags (days)",
          "Comma-separated lags in days: feature lag_<k> is the key's target k days before the row's date. "
          "For daily rows; otherwise as the lags in steps (test rows take earlier predictions, unknown values missing or "
          "imputed).",
          GROUP_FEATURES, type=int_tuple, default="", regex=r"^([1-9][0-9]*(,[1-9][0-9]*)*)?$", example="7,364",
          allowed="comma-separated positive integers (days)"),
    Param("rolling_mean_days", "Target rolling means (days)",
          "Comma-separated spans in days: feature rolling_mean_<w> is the key's mean target over the w days "
          "before the row's date, with the same rule for test rows.",
          GROUP_FEATURES, type=int_tuple, default="", regex=r"^([1-9][0-9]*(,[1-9][0-9]*)*)?$", example="7,28",
          allowed="comma-separated positive integers (days)"),
    Param("check_leakage", "Check feature leakage",
          "Verify on every window that no generated feature of a test row uses a target value at or after "
          "the window's test start; the run fails if one does.",
          GROUP_FEATURES, type=parse_bool, default=False, param_type="BOOLEAN", regex=BOOL_RE),
    # -- hyperparameter search per key x window -----------------------------------
    Param("param_grid", "Hyperparameter grid",
          'JSON grid {"alpha": [0.1, 1, 10]} or list of configurations [{"alpha": 1}, ...]. When given, each '
          "key x window chooses its configuration on a validation split of its training periods.",
          GROUP_SEARCH, default="", regex=JSON_GRID_RE, example='{"max_depth": [2, 3], "n_estimators": [50, 100]}'),
    Param("search", "Search strategy",
          "grid: try every configuration of the grid; random: try a number of them, drawn with the random seed.",
          GROUP_SEARCH, default="grid", choices=("grid", "random"), param_type="ENUM", parent="param_grid"),
    Param("n_configs", "Random configurations", "How many configurations the random search tries per key x window.",
          GROUP_SEARCH, type=int, default=10, param_type="NUMBER", regex=POSITIVE_INT_RE, allowed="a positive integer",
          parent="search", parent_values=("random",)),
    Param("validation_periods", "Validation periods",
          "The last N training periods of each window score the configurations (the test period never does).",
          GROUP_SEARCH, type=int, default=1, param_type="NUMBER", regex=POSITIVE_INT_RE, allowed="a positive integer",
          parent="param_grid"),
    Param("search_batch_size", "Configurations per work item",
          "Configurations scored together in one work element: amortises per-element overhead for small fits.",
          GROUP_SEARCH, type=int, default=16, param_type="NUMBER", regex=POSITIVE_INT_RE, allowed="a positive integer",
          hidden=True),
    # -- several models: the best one per key (issue 15) ---------------------------
    Param("selection_table", "Selection table",
          "BigQuery table for selection/ (several models: the score of each model per key and the choice).",
          GROUP_BIGQUERY, param_type="BIGQUERY_TABLE", regex=BQ_TABLE_RE, allowed=BQ_TABLE_ALLOWED,
          example="my-project:dataset.selection", parent="output_table"),
    Param("select_metric", "Selection metric",
          "With several models: the score each candidate is chosen by (see the selection rule), its mean over "
          "the backtest windows where every model trained (ties: the first model listed); written to selection/. mase (the "
          "default), smape and wape are scale-free: keys of different size weigh alike.",
          GROUP_MODEL, default="mase", choices=("rmse", "mae", "mape", "mase", "smape", "wape"), param_type="ENUM",
          choice_help=(("rmse", "root mean squared error"), ("mae", "mean absolute error"),
                       ("mape", "mean absolute percentage error (non-zero actuals)"),
                       ("mase", "MAE over the training periods' in-sample seasonal naive MAE"),
                       ("smape", "symmetric MAPE, 0-200 (Makridakis)"),
                       ("wape", "sum of absolute errors over sum of absolute actuals"))),
    Param("fallback_model", "Fallback model",
          "A registry model (e.g. seasonal_naive, ridge) fitted instead wherever a candidate fails (fit_error, "
          "timeout, fit_crashed) or is skipped for too little history (too_few_periods, too_few_rows), in a "
          "backtest window or a forecast; the ledger (reason 'fallback: <why>') and every prediction row "
          "(fitted_model, fallback) say so. Empty: no fallback.",
          GROUP_MODEL, default=""),
    Param("select", "Selection rule",
          "With several candidates, which one each key keeps: per_key (its own best mean score), global (the "
          "best mean over every key's windows, for every key) or auto (the global choice, unless the key's own "
          "best beats it on every one of at least 2 windows, 2 + log2(k - 1) rounded up with k candidates, and "
          "by 10% on average). summary.json reports each rule's out-of-sample value (chosen on earlier "
          "windows, scored on the next).",
          GROUP_MODEL, default="auto", choices=("per_key", "global", "auto"), param_type="ENUM"),
    # -- forecast of the periods that have not happened, with intervals (issue 15) --
    Param("forecast", "Forecast future periods",
          "Also forecast each key's rows with an empty target that come after its last period with a "
          "target (instead of rejecting them): each key's chosen model (or the only one) is trained on its "
          "last observed periods (window size minus test periods) and predicts them; written to forecasts/.",
          GROUP_MODEL, type=parse_bool, default=False, param_type="BOOLEAN", regex=BOOL_RE),
    Param("forecast_table", "Forecasts table",
          "BigQuery table for forecasts/ (one row per key and future date, with the interval bounds); created "
          "if needed, written with the same rules as the other tables.",
          GROUP_BIGQUERY, param_type="BIGQUERY_TABLE", regex=BQ_TABLE_RE, allowed=BQ_TABLE_ALLOWED,
          example="my-project:dataset.forecasts", parent="forecast", parent_values=("true",)),
    Param("interval_levels", "Interval levels (%)",
          "Comma-separated coverage levels in percent, e.g. 80,95: each forecast and each backtest prediction "
          "that has earlier windows gets a band from the key's own earlier absolute errors (split conformal); "
          "the share of actual values inside each band is reported.",
          GROUP_MODEL, type=int_tuple, default="", regex=r"^([1-9][0-9]?(,[1-9][0-9]?)*)?$", example="80,95",
          allowed="comma-separated integers between 1 and 99 (percent)"),
    Param("interval_method", "Interval method",
          "How the bands of interval levels are made: conformal (the key's own earlier absolute errors, for "
          "every model) or model (a statistical model's own prediction intervals from statsforecast, in "
          "every backtest window and forecast; the other models, combinations included, stay conformal, and "
          "each band row says which it is in interval_source).",
          GROUP_MODEL, default="conformal", choices=("conformal", "model"), param_type="ENUM",
          parent="interval_levels",
          choice_help=(("conformal", "split conformal from the key's earlier backtest residuals"),
                       ("model", "statsforecast's own intervals for statistical models, conformal for the others"))),
)

PARAMS_BY_NAME = {p.name: p for p in PARAMS}
TABLE_PARAMS = tuple(p.name for p in PARAMS if p.param_type == "BIGQUERY_TABLE")
