"""Benchmark: this pipeline against the article's approach, a bare joblib loop and Spark's applyInPandas.

See README.md, section "Benchmark". Run from the repository root: `make bench` or
`python -m bench.run_bench --help`.
"""
