"""Sources: the rows of the user's query or files, as columnar chunks (pandas DataFrames).

Rows travel as DataFrame chunks, never one Python dict per row: the shuffle
later moves one element per key x period instead of one per row.

- DuckDB (local default): `--query` runs in DuckDB with the embedded sample
  registered as `dataset.table`, so the article's SQL runs unchanged; with
  `--source=duckdb --input=FILES`, the input files are registered as `input_files`
  too (read by the pipeline's own file reader). Then the connection is sandboxed:
  DuckDB's external access is disabled and its configuration locked, so a query
  reaches only those tables (no `read_csv('/etc/passwd')`, ATTACH, COPY or
  extension loads), at launch and on the workers alike.
- Files: `--input` Parquet/CSV/JSONL path or glob, local or gs://.
- BigQuery: `--source=bigquery` (see `pipeline.io.bigquery`).
"""

from __future__ import annotations

import io

import apache_beam as beam
import pandas as pd
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems

from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.io import sample_data
from pipeline.io.columns import CHUNK_ROWS, require_columns
from pipeline.utils.packing import ReshuffleFrames
from pipeline.utils.tagged import INFRASTRUCTURE_ERRORS

SAMPLE_SCHEMA, SAMPLE_TABLE = "dataset", "table"
INPUT_TABLE = "input_files"  # the --input files, with --source=duckdb


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


def query_text_columns(params: PipelineParams) -> tuple[str, ...]:
    """What a local query sees as text in input_files: the key alone. Its date keeps the type the reader
    finds for the whole file, so that the query's date functions work on it."""
    return (params.key_column,)


def duckdb_connection(input_pattern: str | None = None, text_columns: tuple[str, ...] = ()):
    """A sandboxed DuckDB connection: the embedded sample registered as dataset.table and, with
    `input_pattern`, the input files as input_files (`text_columns` of CSV and JSONL files as the text
    written: the key, query_text_columns); then no file, network or extension access
    (`enable_external_access=false`, which also stops scans of Python variables) and the
    configuration locked, so a query cannot turn access back on."""
    import duckdb

    connection = duckdb.connect()
    connection.execute("SET threads TO 1")  # one core per worker process; the pipeline parallelises
    connection.register("embedded_sample", sample_data.generate())
    connection.execute(f"CREATE SCHEMA {SAMPLE_SCHEMA}")
    connection.execute(f'CREATE VIEW {SAMPLE_SCHEMA}."{SAMPLE_TABLE}" AS SELECT * FROM embedded_sample')
    if input_pattern:
        connection.register(INPUT_TABLE, read_input_files(input_pattern, text_columns))
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
    return connection


def read_input_files(pattern: str, text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Every file matching --input (local or gs://), in path order, as one DataFrame (read_file_table)."""
    frames = []
    for path in _matched_paths(pattern):
        with FileSystems.open(path) as handle:
            frames.append(read_file_table(path, handle, text_columns=text_columns))
    return pd.concat(frames, ignore_index=True)


def duckdb_columns(query: str, input_pattern: str | None = None) -> list[str]:
    """Column names of the query's result, without running it in full."""
    import duckdb

    connection = duckdb_connection(input_pattern)
    try:
        return single_statement(connection, query).columns
    except duckdb.PermissionException as exc:
        raise ParameterError("query", query, f"a query over the tables the pipeline registers ({SAMPLE_SCHEMA}."
                             f"{SAMPLE_TABLE}: the embedded sample; {INPUT_TABLE}: the --input files with "
                             "--source=duckdb); a local query may not read files, attach databases or load "
                             f"extensions: {exc}") from None
    except (ParameterError, *INFRASTRUCTURE_ERRORS, duckdb.IOException, duckdb.OutOfMemoryException):
        raise  # a full disk or exhausted memory is not a bad query
    except duckdb.CatalogException as exc:  # an unknown table: DuckDB would suggest one of its own (pg_enum)
        raise ParameterError("query", query, "a query over the tables a local query can see: "
                             + ", ".join(visible_tables(input_pattern))
                             + f" (DuckDB: {str(exc).splitlines()[0]})") from None
    except Exception as exc:
        raise ParameterError("query", query, f"a query DuckDB can run locally: {exc}") from None
    finally:
        connection.close()


def visible_tables(input_pattern: str | None) -> list[str]:
    """The tables the local sandbox registers, as a query names them."""
    described = {f"{SAMPLE_SCHEMA}.{SAMPLE_TABLE}": "the embedded sample"}
    described[INPUT_TABLE] = "the --input files" if input_pattern else "the --input files, when --input is given"
    return [f"{name} ({meaning})" for name, meaning in described.items()]


def single_statement(connection, query: str):
    """The query as a DuckDB relation (planned, not run). Its own text is kept whole, so a trailing `;`
    or `-- comment` is fine (wrapping it in a subquery would not be); more than one statement is refused."""
    statements = connection.extract_statements(query)
    if len(statements) != 1:
        raise ParameterError("query", query, f"one SELECT statement (this is {len(statements)})")
    return connection.sql(query)


def _input_paths(pattern: str) -> list[str]:
    """The files matching `pattern`, in path order (none: an empty list)."""
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def _matched_paths(pattern: str) -> list[str]:
    matches = _input_paths(pattern)
    if not matches:
        raise ParameterError("input", pattern, "a path or glob that matches at least one file")
    return matches


def file_columns(pattern: str) -> list[str]:
    """Column names of the first file matching --input (of a Parquet file, from its footer only)."""
    path = _matched_paths(pattern)[0]
    with FileSystems.open(path) as handle:
        if path.endswith(".parquet"):
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(handle).schema_arrow.names)
        head = read_file_table(path, handle, limit=1)
    return list(head.columns)


MAX_FOOTERS_READ = 64  # files whose Parquet footers the launcher reads to count the pieces to read


def file_pieces(path: str) -> list[tuple[str, int | None]]:
    """The parts of one input file that can be read apart: (path, row group) per Parquet row group,
    (path, None) for a whole file of another format."""
    if not path.endswith(".parquet"):
        return [(path, None)]
    import pyarrow.parquet as pq

    with FileSystems.open(path) as handle:
        groups = pq.ParquetFile(handle).metadata.num_row_groups
    return [(path, group) for group in range(groups)]


def count_file_pieces(pattern: str) -> int:
    """How many pieces the --input files are read in (file_pieces), counted from at most
    MAX_FOOTERS_READ footers: more files than that are at least that many pieces. 0 when nothing
    matches (yet: a graph built ahead of its input; the launch itself refuses that, check_columns)."""
    paths = _input_paths(pattern)
    if len(paths) > MAX_FOOTERS_READ:
        return len(paths)
    return sum(len(file_pieces(path)) for path in paths)


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

        paths = _input_paths(params.input)
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


class EmptyFile(ParameterError):
    """A CSV file without even a header row."""


def read_file_table(path: str, handle, limit: int | None = None, columns: list[str] | None = None,
                    row_group: int | None = None, text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A file (or, for Parquet, one of its row groups) as a DataFrame; Parquet reads only `columns`
    (all when None) and only the bytes it needs from `handle` (seekable, local or gs://). CSV and JSONL
    `text_columns` (the key and the date) are read as the text written, never as a guessed type:
    "007" stays "007", not 7; the date is parsed by validation, with one format per column."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(handle)
        table = (parquet.read(columns=columns) if row_group is None
                 else parquet.read_row_group(row_group, columns=columns))
        if limit is not None:
            table = table.slice(0, limit)
        return table.to_pandas()
    data = handle.read()
    if path.endswith(".csv"):
        import pyarrow.csv as pacsv

        # Only an empty field is null: "n/a" and the like stay text, so validation counts
        # them as coerced exactly as it does for Parquet or BigQuery strings.
        if not data.strip():
            raise EmptyFile("input", path, "a CSV file with a header row (this file is empty)")
        import pyarrow as pa

        table = pacsv.read_csv(io.BytesIO(data),
                               parse_options=pacsv.ParseOptions(newlines_in_values=True),
                               convert_options=pacsv.ConvertOptions(
                                   null_values=[""], strings_can_be_null=True,
                                   column_types={name: pa.string() for name in text_columns}))
    elif path.endswith((".jsonl", ".json")):
        frame = pd.read_json(io.BytesIO(data), lines=True, dtype=False, nrows=limit)  # no type guessed
        for name in text_columns:  # a number written unquoted is text as written too: 7 -> "7"
            if name in frame:
                frame[name] = frame[name].astype("string")
        return frame
    else:
        raise ParameterError("input", path, "a .parquet, .csv, .jsonl or .json file")
    if limit is not None:
        table = table.slice(0, limit)
    return table.to_pandas()


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
            from pipeline.io import bigquery_beam  # Beam's BigQuery IO and Google's clients: only when used

            return pbegin | "BigQuery" >> bigquery_beam.ReadBigQueryChunks(self._params)
        raise ParameterError("source", self._kind, "one of duckdb, file, bigquery")


def check_columns(params: PipelineParams, kind: str) -> None:
    """Fails before any work when the source lacks a column the parameters name."""
    if kind == "duckdb":
        available = duckdb_columns(params.query, params.input or None)
    elif kind == "file":
        available = file_columns(params.input)
    else:
        return  # BigQuery: names and types checked from the table/query schema by pipeline.io.bigquery.prepare
    require_columns(params, available)


def check_params(params: PipelineParams) -> None:
    if params.source == "file" and not params.input:
        raise ParameterError("source", params.source, "--source=file needs --input")
