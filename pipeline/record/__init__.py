"""What a run leaves behind for people: lineage and the manifest, the report, reproduction and re-prediction."""
