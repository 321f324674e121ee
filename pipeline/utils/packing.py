"""DataFrames through a shuffle as bytes.

Beam's local runner (the FnApiRunner) decodes every element it groups: a DataFrame value
would be unpickled in the runner process, held there as Python objects until the next stage
reads it, and pickled again. Packed as bytes, the runner only keeps and forwards them. The
effect on a whole run was within the benchmark's noise (bench/NOTE.md); it keeps that pickling
out of the runner process, which every worker waits on between stages. On Dataflow it changes
only who calls pickle.
"""

from __future__ import annotations

import pickle

import apache_beam as beam
import pandas as pd


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
