"""Record: what the run did (the summary and its checks) or would do (the plan)."""
