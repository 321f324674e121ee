"""Reading and writing: sources (DuckDB, files, BigQuery), sinks (files, BigQuery), publishing, saved models."""
