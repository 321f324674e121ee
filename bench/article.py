"""The article's pipeline, ported to the current Beam API as literally as possible: the reference point.

One Python dict per row from the source, `TimestampedValue` on the year,
`SlidingWindows(size=3, period=1)`, `GroupByKey` on the shop, a DataFrame built
per group and one model per shop x window, predictions written row by row.
It runs on the same local runner settings as the pipeline (`pipeline.run.pipeline_options`).

Deviations from the article, each needed to run today or to compare predictions:
- `BigQuerySource(query=...)` -> `ReadFromParquet` (dicts per row, as BigQuerySource gave);
  `BigQuerySink` -> `WriteToParquet` (one dict per row in, as BigQuerySink took);
- the model is `pipeline.models.make_estimator(--model, seed=group_seed(0, shop, window start))`
  instead of `GradientBoostingRegressor()`, so that its predictions can be compared
  with the pipeline's and the bare loop's (same estimator, same seed);
- `pd.to_numeric(errors="coerce")` (the pipeline's rule) and the group sorted by date
  (row order inside a group otherwise depends on the shuffle, and a tree's tie-breaks on it).

    python -m bench.article --input data.parquet --output out/preds --model gbr
"""

from __future__ import annotations

import argparse

import apache_beam as beam
import apache_beam.transforms.window as window
import pyarrow as pa

from pipeline.models import registry
from pipeline.runner import pipeline_options

PREDICTION_SCHEMA = pa.schema([("shop_id", pa.string()), ("date", pa.date32()),
                               ("predict", pa.float64()), ("sales", pa.float64())])


def assign_timevalue(v):
    import apache_beam.transforms.window as window

    return window.TimestampedValue(v, v["year"])


def learn_predict(records, model_name, win=beam.DoFn.WindowParam):
    import pandas as pd

    from pipeline.models import registry

    target_attr = 'sales'
    learn_attrs = ['attr1', 'attr2', 'attr3']

    data = pd.DataFrame(records[1])
    data[learn_attrs] = data[learn_attrs].apply(pd.to_numeric, errors="coerce")
    data = data.fillna(0.)

    if len(data["year"].unique()) < 3:
        return []  # nothing to do for combinations with fewer than 3 years

    data = data.sort_values("date", kind="mergesort")
    year_max = data["year"].max()
    train = data[data["year"] < year_max]  # two years to learn
    test = data[data["year"] == year_max]  # the next year to evaluate the predictions

    window_start = int(win.start.micros // 1_000_000)
    model = registry.make_estimator(model_name, {}, seed=registry.group_seed(0, records[0], window_start))
    model.fit(train[learn_attrs], train[target_attr])
    test.loc[:, "predict"] = model.predict(test[learn_attrs])

    return test[["shop_id", "date", "predict", "sales"]].to_dict(orient='records')


def build(pipeline: beam.Pipeline, input_path: str, output_prefix: str, model_name: str):
    return (pipeline
            | "Query data" >> beam.io.ReadFromParquet(input_path)
            | "Assign time" >> beam.Map(assign_timevalue)
            | "Set window" >> beam.WindowInto(window.SlidingWindows(size=3, period=1))
            | "Assign group key" >> beam.Map(lambda v: (v["shop_id"], v))
            | "Group by group key and time window" >> beam.GroupByKey()
            | "Learn and predict" >> beam.FlatMap(learn_predict, model_name)
            | "Write predict data" >> beam.io.WriteToParquet(output_prefix, schema=PREDICTION_SCHEMA,
                                                              file_name_suffix=".parquet"))


def run(input_path: str, output_prefix: str, model_name: str, beam_args: list[str]) -> None:
    with beam.Pipeline(options=pipeline_options(beam_args)) as pipeline:
        build(pipeline, input_path, output_prefix, model_name)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True, help="prefix of the predictions' part files")
    parser.add_argument("--model", default="gbr", choices=sorted(registry.REGISTRY))
    args, beam_args = parser.parse_known_args(argv)
    run(args.input, args.output, args.model, beam_args)


if __name__ == "__main__":
    main()
