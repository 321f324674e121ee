"""DataFrames through a shuffle as bytes, and large Arrow tables as cheap elements.

Beam's local runner (the FnApiRunner) decodes every element it groups: a DataFrame value
would be unpickled in the runner process, held there as Python objects until the next stage
reads it, and pickled again. Packed as bytes, the runner only keeps and forwards them. The
effect on a whole run was within the benchmark's noise (bench/NOTE.md); it keeps that pickling
out of the runner process, which every worker waits on between stages. On Dataflow it changes
only who calls pickle.

Beam also measures the size of a sample of every PCollection's elements by encoding them; with
the default coder, a table of 100,000 rows is pickled just to be measured. `ArrowTableCoder`
reads the size from the table's buffers instead.
"""

from __future__ import annotations

import pickle

import apache_beam as beam
import pandas as pd
import pyarrow as pa
from apache_beam.coders.coder_impl import CallbackCoderImpl


def pack(frame: pd.DataFrame) -> bytes:
    return pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(data: bytes) -> pd.DataFrame:
    return pickle.loads(data)


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
