"""The report's scale-free metrics: MASE, sMAPE and WAPE per test period and overall, the model against
seasonal naive computed in the same pass (summary.json's `*_by_test_period` and `scaled_overall`)."""

from __future__ import annotations

METRICS = (("mase", "MASE"), ("smape", "sMAPE"), ("wape", "WAPE"))
LABELS = ("model", "seasonal_naive")


def section(summary: dict, table) -> list[str]:
    """HTML parts (empty when the summary has no scale-free metrics); `table(rows, header)` renders."""
    overall = summary.get("scaled_overall")
    if not overall:
        return []
    periods = sorted(summary.get("mase_by_test_period", {}).get("model", {}), key=int)
    header = ("test period", *(f"{title} {who}" for _, title in METRICS for who in ("model", "seasonal naive")))
    rows = [(period, *(summary[f"{name}_by_test_period"][label].get(period) for name, _ in METRICS
                       for label in LABELS)) for period in periods]
    rows.append(("overall", *(overall[name][label] for name, _ in METRICS for label in LABELS)))
    return ["<h2>Scale-free metrics vs seasonal naive</h2>",
            "<p>MASE: MAE over the in-sample seasonal naive MAE of each window's training periods (below 1: "
            "better than seasonal naive was in-sample); sMAPE 0-200; WAPE: sum |error| / sum |actual|. Pooled "
            f"over every model's predictions; season length {summary.get('season_length')}.</p>",
            table(rows, header)]
