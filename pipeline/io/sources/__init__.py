"""Sources: the user's query or files (DuckDB, Parquet, CSV) as column chunks, the embedded sample (the columns' roles: pipeline.io.columns)."""
