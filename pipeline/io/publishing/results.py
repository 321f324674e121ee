"""The run's result files read and written whole: JSON documents (summary, plan, manifest) and output tables."""

from __future__ import annotations

import io
import json
import math

import pandas as pd
from apache_beam.io.filesystems import FileSystems

from pipeline.io.publishing.publish import published_files
from pipeline.io.outputs.sinks import PLAN_SUMMARY_FILE, SUMMARY_FILE


NON_FINITE = "non_finite_values"  # where a document's NaN or infinite numbers were, and why they are null


def _finite(value, path: str, replaced: dict):
    if isinstance(value, float) and not math.isfinite(value):
        replaced[path] = ("not a number" if math.isnan(value) else
                          f"{value}: beyond the float range (values about 1e154 or larger overflow when squared)")
        return None
    if isinstance(value, dict):
        return {k: _finite(v, f"{path}.{k}" if path else str(k), replaced) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, f"{path}[{i}]", replaced) for i, v in enumerate(value)]
    return value


def finite_json(document: dict) -> dict:
    """The document with every NaN or infinite number replaced by null (strict JSON has neither), and
    NON_FINITE naming each replaced value's place and what it was."""
    replaced = {}
    cleaned = _finite(document, "", replaced)
    return {**cleaned, NON_FINITE: {**cleaned.get(NON_FINITE, {}), **replaced}} if replaced else cleaned


def write_json(path: str, document: dict) -> None:
    """Writes strict JSON (finite_json) via a temporary name and a rename, so readers never see half a file."""
    temporary = path + ".tmp"
    text = json.dumps(finite_json(document), indent=2, sort_keys=False, default=str, allow_nan=False)
    with FileSystems.create(temporary) as handle:
        handle.write(text.encode())
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])


def published_parts(output: str, name: str) -> list[str]:
    """The files of one output folder that belong to the published run: those its commit record
    (summary.json, or plan.json for the plan) lists. While a newer run is being published the folder
    can also hold that run's files, or after it the older run's; the record says which are current.
    Outputs written before records listed their files: every part-* file."""
    for marker in (SUMMARY_FILE, PLAN_SUMMARY_FILE):
        path = FileSystems.join(output, marker)
        if not FileSystems.exists(path):
            continue
        files = published_files(read_json(output, marker), name)
        if files is not None:
            return sorted(FileSystems.join(output, name, file) for file in files)
    return sorted(m.path for m in FileSystems.match([FileSystems.join(output, name, "part-*")])[0].metadata_list)


def read_table(output: str, name: str, where: tuple[str, list] | None = None) -> pd.DataFrame:
    """Every published part of one output folder (Parquet or CSV, local or gs://) as one DataFrame;
    `where=(column, values)` keeps the rows whose column is among the values."""
    paths = published_parts(output, name)
    frames = []
    for path in paths:
        with FileSystems.open(path) as handle:
            data = io.BytesIO(handle.read())
        if path.endswith(".parquet"):
            frame = pd.read_parquet(data, filters=[(where[0], "in", where[1])] if where else None)
        else:
            frame = pd.read_csv(data, float_precision="round_trip")  # pandas 2's default is off by 1 ulp
            frame = frame[frame[where[0]].astype(str).isin(where[1])] if where else frame
        frames.append(frame)
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_json(output: str, name: str) -> dict:
    with FileSystems.open(FileSystems.join(output, name)) as handle:
        return json.loads(handle.read())


def read_summary(output: str) -> dict:
    return read_json(output, SUMMARY_FILE)
