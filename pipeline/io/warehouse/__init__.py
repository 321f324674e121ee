"""BigQuery: tables and schemas, Beam's BigQuery IO, the staging tables swapped in at publish."""
