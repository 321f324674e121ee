"""The local query (--query on DuckDB, the embedded default): a sandboxed connection where the embedded
sample is `dataset.table` (so the article's SQL runs unchanged) and, with `--source=duckdb --input=FILES`,
the input files are `input_files` (read by the pipeline's own file reader). DuckDB's external access is
then disabled and its configuration locked, so a query reaches only those tables (no
`read_csv('/etc/passwd')`, ATTACH, COPY or extension loads), at launch and on the workers alike."""

from __future__ import annotations

from pipeline.io.sources import sample_data
from pipeline.io.sources.files import read_input_files
from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.utils.tagged import INFRASTRUCTURE_ERRORS


SAMPLE_SCHEMA, SAMPLE_TABLE = "dataset", "table"


INPUT_TABLE = "input_files"  # the --input files, with --source=duckdb


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
