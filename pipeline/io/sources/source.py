"""Sources: the rows of the user's query or files, as columnar chunks (pandas DataFrames).

Rows travel as DataFrame chunks, never one Python dict per row: the shuffle
later moves one element per key x period instead of one per row.

- DuckDB (local default): `--query` in the sandbox of `local_query` (the embedded sample as
  `dataset.table`; with `--source=duckdb --input=FILES`, the files as `input_files`).
- Files: `--input` Parquet/CSV/JSONL path or glob, local or gs:// (`files`).
- BigQuery: `--source=bigquery` (see `pipeline.io.warehouse.bigquery`).
"""

from __future__ import annotations

import apache_beam as beam
import pandas as pd
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems

from pipeline.io.columns import CHUNK_ROWS, require_columns
from pipeline.io.sources.files import (MAX_FOOTERS_READ, EmptyFile, count_file_pieces, file_columns, file_pieces,
                                       input_paths, read_file_table)
from pipeline.io.sources.local_query import duckdb_columns, duckdb_connection, query_text_columns, single_statement
from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.utils.packing import ReshuffleFrames


def resolve_source(params: PipelineParams, runner: str | None) -> str:
    """The source kind this run reads from: duckdb, file or bigquery."""
    if params.source != "auto":
        return params.source
    if params.input:
        return "file"
    if params.input_table:
        return "bigquery"
    if runner and "dataflow" in runner.lower():
        return "bigquery"
    return "duckdb"


def text_columns(params: PipelineParams) -> tuple[str, ...]:
    """The columns every reader of --input files takes as the text written, never as a guessed type:
    the key ("007" and "7" are two keys) and the date (parsed by validation, one format per column)."""
    return params.key_column, params.date_column


def distinct_keys_at_most(params: PipelineParams, kind: str, limit: int) -> int | None:
    """The distinct values of the key column, counted up to `limit`, when the launcher can count them
    cheaply (Parquet files: their key column only; the DuckDB query); None otherwise. Raw values,
    before validation (which strips and rejects some): a hint for the graph's shape, never for results."""
    key = params.key_column
    try:
        if kind == "duckdb":
            if params.input:  # the launcher would load every input file once more just to count
                return None
            connection = duckdb_connection()
            try:
                return single_statement(connection, params.query).query(
                    "source", f'SELECT count(*) FROM (SELECT DISTINCT "{key}" FROM source LIMIT {int(limit)})').fetchone()[0]
            finally:
                connection.close()
        if kind != "file":
            return None
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        paths = input_paths(params.input)
        if not paths or len(paths) > MAX_FOOTERS_READ or not all(p.endswith(".parquet") for p in paths):
            return None
        seen = set()
        for path in paths:
            with FileSystems.open(path) as handle:
                parquet = pq.ParquetFile(handle)
                for group in range(parquet.metadata.num_row_groups):  # stops as soon as `limit` are seen
                    seen.update(pc.unique(parquet.read_row_group(group, columns=[key]).column(key)).to_pylist())
                    if len(seen) >= limit:
                        return limit
        return len(seen)
    except Exception:  # a hint only: the run itself reports what is wrong with the source
        return None


def _chunks(frame: pd.DataFrame, size: int = CHUNK_ROWS):
    for start in range(0, len(frame), size):
        yield frame.iloc[start:start + size].reset_index(drop=True)


class _RunDuckDBQuery(beam.DoFn):
    def __init__(self, query: str, columns: tuple[str, ...], input_pattern: str | None = None,
                 text_columns: tuple[str, ...] = ()):
        self._query, self._columns, self._input, self._text_columns = query, columns, input_pattern, text_columns

    def process(self, _):
        connection = duckdb_connection(self._input, self._text_columns)  # the launch's sandbox, on the worker too
        try:
            reader = connection.execute(self._query).to_arrow_reader(CHUNK_ROWS)
            for batch in reader:
                yield batch.to_pandas()[list(self._columns)]
        finally:
            connection.close()


class _ReadFilePiece(beam.DoFn):
    """(path, Parquet row group or None for the whole file) -> chunks of the needed columns."""

    def __init__(self, columns: tuple[str, ...], text_columns: tuple[str, ...] = ()):
        self._columns, self._text_columns = columns, text_columns

    def process(self, piece):
        path, row_group = piece
        with FileSystems.open(path) as handle:
            if path.endswith(".parquet"):
                import pyarrow.parquet as pq

                available = set(pq.ParquetFile(handle).schema_arrow.names)
                self._check(path, available)
                frame = read_file_table(path, handle, columns=list(self._columns), row_group=row_group)
            else:
                try:
                    frame = read_file_table(path, handle, text_columns=self._text_columns)
                except EmptyFile:  # no rows (the launch refuses an empty first file: file_columns)
                    return
                self._check(path, frame.columns)
        yield from _chunks(frame[list(self._columns)])

    def _check(self, path: str, available) -> None:
        missing = [c for c in self._columns if c not in available]
        if missing:
            raise ValueError(f"{path} lacks column(s) {missing}")


class ReadSource(beam.PTransform):
    """Reads the rows named by the parameters as DataFrame chunks of the needed columns.

    Files are read in pieces (file_pieces: each Parquet row group, each other file), spread over
    the workers before they are read. When there are fewer pieces than `slots` (the fits that can
    run at once), the chunks read are spread again (a shuffle of all the data), so that validation
    uses every worker; otherwise each worker validates what it read, and no data crosses a shuffle
    before the one by key."""

    def __init__(self, params: PipelineParams, kind: str, slots: int | None = None):
        super().__init__()
        self._params, self._kind, self._slots = params, kind, slots

    def expand(self, pbegin):
        columns = self._params.columns
        if self._kind == "duckdb":
            return (pbegin
                    | "Query" >> beam.Create([self._params.query])
                    | "RunInDuckDB" >> beam.ParDo(_RunDuckDBQuery(self._params.query, columns,
                                                                self._params.input or None,
                                                                query_text_columns(self._params)))
                    | "Spread" >> ReshuffleFrames())
        if self._kind == "file":
            chunks = (pbegin
                      | "Match" >> fileio.MatchFiles(self._params.input)
                      | "Pieces" >> beam.FlatMap(lambda metadata: file_pieces(metadata.path))
                      | "SpreadPieces" >> beam.Reshuffle()
                      | "ReadChunks" >> beam.ParDo(_ReadFilePiece(columns, text_columns(self._params))))
            if self._slots is None or count_file_pieces(self._params.input) < self._slots:
                chunks = chunks | "Spread" >> ReshuffleFrames()
            return chunks
        if self._kind == "bigquery":
            from pipeline.io.warehouse import bigquery_beam  # Beam's BigQuery IO and Google's clients: only when used

            return pbegin | "BigQuery" >> bigquery_beam.ReadBigQueryChunks(self._params)
        raise ParameterError("source", self._kind, "one of duckdb, file, bigquery")


def check_columns(params: PipelineParams, kind: str) -> None:
    """Fails before any work when the source lacks a column the parameters name."""
    if kind == "duckdb":
        available = duckdb_columns(params.query, params.input or None)
    elif kind == "file":
        available = file_columns(params.input)
    else:
        return  # BigQuery: names and types checked from the table/query schema by pipeline.io.warehouse.bigquery.prepare
    require_columns(params, available)


def check_params(params: PipelineParams) -> None:
    if params.source == "file" and not params.input:
        raise ParameterError("source", params.source, "--source=file needs --input")
