"""The report's "models compared" section (several models: see pipeline.stages.decide.select)."""

from __future__ import annotations

import html

from pipeline.stages.decide.select import BASELINE, CHOICES


def section(summary: dict, table) -> list[str]:
    """HTML parts from summary.json's `model_comparison` (none for a one-model run). `table(rows,
    header)` is the report's table renderer."""
    comparison = summary.get("model_comparison")
    if not comparison:
        return []
    metric, models = comparison["select_metric"], comparison["models"]
    oos = comparison["out_of_sample"]
    if f"{metric}_by_test_period" not in oos:  # a summary written before the pool carried every metric
        metric = "rmse"
    labels = [*models, *CHOICES.values(), BASELINE]
    by_period = oos[f"{metric}_by_test_period"]
    periods = sorted(oos["rows_by_test_period"], key=int)
    rows = [(p, oos["rows_by_test_period"][p], *(by_period[label].get(p) for label in labels)) for p in periods]
    rows.append(("overall", sum(oos["rows_by_test_period"].values()), *(oos["overall"][metric].get(label)
                                                                         for label in labels)))
    chosen = [(m, comparison["keys_choosing"].get(m, 0)) for m in models]
    chosen.append(("no choice (no window where every model trained)", comparison["keys_without_choice"]))
    return [
        f"<h2>Models compared ({html.escape(metric.upper())}, out of sample)</h2>",
        "<p>Per test period, on the key x windows where every model trained and an earlier window exists: "
        "each model alone, each selection rule's choice (per key, global, auto) made on earlier windows only "
        f"(scored on this one), and the naive baseline. This run keeps {html.escape(comparison.get('select', ''))}"
        f"'s choice. {oos['windows_scored']} key x windows scored.</p>",
        table([tuple(r) for r in rows], ("test period", "rows", *labels)),
        "<p>Keys choosing each model on the whole backtest (selection/):</p>",
        table(chosen, ("model", "keys")),
    ]
