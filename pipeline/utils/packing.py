"""DataFrames through a shuffle as bytes (or, in local runs, as references to spilled bytes), and
large Arrow tables as cheap elements.

Beam's local runner (the FnApiRunner) decodes every element it groups: a DataFrame value
would be unpickled in the runner process, held there as Python objects until the next stage
reads it, and pickled again. Packed as bytes, the runner only keeps and forwards them. The
effect on a whole run was within the benchmark's noise (bench/NOTE.md); it keeps that pickling
out of the runner process, which every worker waits on between stages. On Dataflow it changes
only who calls pickle.

Locally the runner also forwards every shuffled byte to the workers over gRPC, one core's work
while the workers wait (3 s of a 2,000-key run), and holds all of it in its memory meanwhile. So
in a local multi-process run, whose processes share a disk, the launcher names a spill folder
($PIPELINE_SPILL_DIR, inherited by the workers): `pack_all` writes the frames there, one file per
call, and the shuffle moves (path, offset, length) references. Dataflow leaves it unset: its
workers share no disk, and its shuffle service moves the bytes.

Beam also measures the size of a sample of every PCollection's elements by encoding them; with
the default coder, a table of 100,000 rows is pickled just to be measured. `ArrowTableCoder`
reads the size from the table's buffers instead.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import tempfile
import uuid

import apache_beam as beam
import pandas as pd
import pyarrow as pa
from apache_beam.coders.coder_impl import CallbackCoderImpl


SPILL_ENV = "PIPELINE_SPILL_DIR"
SPILLED = "spilled"  # a reference's tag: ("spilled", path, offset, length)


def pack(frame: pd.DataFrame):
    """One frame to cross a shuffle: its bytes, or a reference to them in the spill folder."""
    return pack_all([frame])[0]


def pack_all(frames: list[pd.DataFrame]) -> list:
    """Frames to cross a shuffle: their bytes, or, with a spill folder, references to them in one
    new file (a retried bundle writes a file of its own; the launcher deletes the folder)."""
    parts = [pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL) for frame in frames]
    folder = os.environ.get(SPILL_ENV)
    if not folder or not parts:
        return parts
    path = os.path.join(folder, f"{uuid.uuid4().hex}.pickles")
    references, offset = [], 0
    with open(path, "wb") as handle:
        for part in parts:
            handle.write(part)
            references.append((SPILLED, path, offset, len(part)))
            offset += len(part)
    return references


def unpack(packed) -> pd.DataFrame:
    if isinstance(packed, tuple) and packed[0] == SPILLED:
        _, path, offset, length = packed
        with open(path, "rb") as handle:
            handle.seek(offset)
            packed = handle.read(length)
    return pickle.loads(packed)


@contextlib.contextmanager
def spill_folder(enabled: bool):
    """With `enabled` (a local multi-process run): a new spill folder named in $PIPELINE_SPILL_DIR for
    this process and the workers it starts, deleted with everything in it on the way out."""
    if not enabled:
        yield None
        return
    folder = tempfile.mkdtemp(prefix="pipeline-spill-")
    previous = os.environ.get(SPILL_ENV)
    os.environ[SPILL_ENV] = folder
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(SPILL_ENV, None)
        else:
            os.environ[SPILL_ENV] = previous
        shutil.rmtree(folder, ignore_errors=True)


class ReshuffleFrames(beam.PTransform):
    """Reshuffle (spreads the elements over workers) for a PCollection of DataFrames."""

    def expand(self, frames):
        return (frames
                | "Pack" >> beam.Map(pack)
                | "Reshuffle" >> beam.Reshuffle()
                | "Unpack" >> beam.Map(unpack))


def _pickle(value) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


class ArrowTableCoder(beam.coders.Coder):
    """pyarrow Tables pickled (Arrow IPC buffers), their size read from `nbytes` when Beam samples
    element sizes. Registered for `pa.Table`: a transform declaring `.with_output_types(pa.Table)`
    gets it."""

    def _create_impl(self):
        return CallbackCoderImpl(_pickle, pickle.loads, size_estimator=lambda table: table.nbytes)

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return pa.Table

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))


beam.coders.registry.register_coder(pa.Table, ArrowTableCoder)
