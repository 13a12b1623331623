# Two entry points: `make test` and `make demo`. Each creates .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint demo bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

demo: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH bash scripts/demo.sh

# Quick settings (a few minutes); BENCH_FULL=1 make bench for the settings RESULTS.md records.
# JSON per benchmark in bench-results/ (BENCH_OUT=...), a table at the end.
BENCH_OUT ?= bench-results
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --out $(BENCH_OUT) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-runs bench-results .pytest_cache .ruff_cache
