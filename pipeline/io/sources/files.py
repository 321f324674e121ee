"""Input files (--input: Parquet, CSV, JSONL; local or gs://): matched, counted in pieces, read as DataFrames
with the key and the date as the text written."""

from __future__ import annotations

import io

import pandas as pd
from apache_beam.io.filesystems import FileSystems

from pipeline.params.declare import ParameterError


def input_paths(pattern: str) -> list[str]:
    """The files matching `pattern`, in path order (none: an empty list)."""
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def matched_paths(pattern: str) -> list[str]:
    matches = input_paths(pattern)
    if not matches:
        raise ParameterError("input", pattern, "a path or glob that matches at least one file")
    return matches


def file_columns(pattern: str) -> list[str]:
    """Column names of the first file matching --input (of a Parquet file, from its footer only)."""
    path = matched_paths(pattern)[0]
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
    paths = input_paths(pattern)
    if len(paths) > MAX_FOOTERS_READ:
        return len(paths)
    return sum(len(file_pieces(path)) for path in paths)


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


def read_input_files(pattern: str, text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Every file matching --input (local or gs://), in path order, as one DataFrame (read_file_table)."""
    frames = []
    for path in matched_paths(pattern):
        with FileSystems.open(path) as handle:
            frames.append(read_file_table(path, handle, text_columns=text_columns))
    return pd.concat(frames, ignore_index=True)
