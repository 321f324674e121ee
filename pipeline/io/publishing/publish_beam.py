"""The publish step in the pipeline: the file names the sinks finalised, and the stage that publishes
(pipeline.io.publishing.publish) once the whole run is staged."""

from __future__ import annotations

import apache_beam as beam

from pipeline.io.publishing import publish
from pipeline.params.values import PipelineParams


class FinalNames(beam.PTransform):
    """The sinks' finalized (staged) file names -> the names they are published under, per output."""

    def __init__(self, publish_id: str):
        super().__init__()
        self._publish_id = publish_id

    def expand(self, written: dict):
        publish_id = self._publish_id
        return {name: files | f"FinalName_{name}" >> beam.Map(publish.final_name, publish_id)
                for name, files in written.items()}


class PublishOutputs(beam.PTransform):
    """summary (or plan) document -> the same document, once every output is in place under --output.

    `written` (the sinks' finalized file names), `manifest` (the staged manifest document) and
    `bigquery` ((StagedOutputs, what WriteBigQueryOutputs returned), when rows go to BigQuery) are side
    inputs: they make this stage wait until the whole run is staged."""

    def __init__(self, params: PipelineParams, written: dict, publish_id: str, manifest=None, bigquery=None):
        super().__init__()
        self._params, self._written, self._publish_id, self._manifest = params, written, publish_id, manifest
        self._tables, self._staged = bigquery or (None, None)

    def expand(self, summary_doc):
        params, publish_id = self._params, self._publish_id
        tagged = tuple(files | f"Tag_{name}" >> beam.Map(lambda path, name=name: (name, path))
                       for name, files in self._written.items())
        waits = [beam.pvalue.AsList(tagged | "AllWrittenFiles" >> beam.Flatten())]
        waits += [beam.pvalue.AsList(pcoll) for pcoll in (self._manifest, self._staged) if pcoll is not None]
        tables = self._tables

        def publish_then_pass_on(doc, written_files, *_manifest):
            written: dict[str, list[str]] = {}
            for name, path in written_files:
                written.setdefault(name, []).append(path)
            publish.publish(params, publish_id, written, tables)
            return doc

        return summary_doc | "Publish" >> beam.Map(publish_then_pass_on, *waits)
