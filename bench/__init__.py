"""Benchmark: this pipeline against the article's approach and against a bare joblib loop.

See README.md, section "Benchmark". Run from the repository root: `make bench` or
`python -m bench.run_bench --help`.
"""
