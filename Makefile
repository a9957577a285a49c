# satseg — the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.9.5
# the dev lock = the runtime lock (requirements.lock, what the image installs) + test tools
LOCK := requirements-dev.lock
LOCK_HASH := $(shell sha256sum $(LOCK) | cut -c1-16)
CACHE_DIR ?= $(HOME)/.cache/satseg
VENV_DIR := $(CACHE_DIR)/venv-$(LOCK_HASH)
VENV := .venv
BIN := $(VENV)/bin
export SM_FRAMEWORK := tf.keras
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
PYTEST_ARGS ?=
# two pytest workers, each test file on one of them (its module fixtures run once): most of a
# test's time is single-threaded (graph tracing, Airflow, subprocesses), so 2 workers on 2
# cores take 0.54x the time of one (31.7 -> 17.0 min); peak memory ~17 GB. 0 = one process.
TEST_WORKERS ?= 2
XDIST = -n $(TEST_WORKERS) --dist loadfile

.PHONY: venv test test-fast lint typecheck check demo stop lock bench clean-venv

## venv: build (or reuse) the virtualenv for this lock hash and link it as .venv
venv: $(VENV_DIR)/.complete
	@ln -sfn $(VENV_DIR) $(VENV)
	@# the cached venv is shared by clones: point its editable install at this checkout
	@if ! $(BIN)/python -I -c 'import satseg,sys,os; sys.exit(os.path.dirname(os.path.dirname(satseg.__file__))!=os.getcwd())' 2>/dev/null; then \
	   VIRTUAL_ENV=$(VENV_DIR) $(CACHE_DIR)/uv/bin/uv pip install -q --no-deps -e . ; fi

$(VENV_DIR)/.complete: $(LOCK)
	@mkdir -p $(CACHE_DIR)
	@if [ ! -x $(CACHE_DIR)/uv/bin/uv ]; then $(PYTHON) -m venv $(CACHE_DIR)/uv && $(CACHE_DIR)/uv/bin/pip install -q uv==$(UV_VERSION); fi
	@echo "creating $(VENV_DIR) from $(LOCK) (first time: a few minutes, ~3.3 GB)"
	@start=$$(date +%s); \
	 rm -rf $(VENV_DIR) && $(CACHE_DIR)/uv/bin/uv venv -q --python $(PYTHON) $(VENV_DIR) && \
	 VIRTUAL_ENV=$(VENV_DIR) $(CACHE_DIR)/uv/bin/uv pip install -q -r $(LOCK) && \
	 echo "venv ready in $$(( $$(date +%s) - start )) s, $$(du -sh $(VENV_DIR) | cut -f1)"
	@touch $@

## test: the full test suite (what CI runs)
test: venv
	@$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

## test-fast: skip tests marked slow
test-fast: venv
	@$(BIN)/python -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy satseg

check: lint typecheck test

## demo: embedded Airflow (SQLite, LocalExecutor) + local MLflow store, one command
demo: venv
	@$(BIN)/python -m satseg.demo start

## stop: stop what `make demo` started, leaving no stray processes
stop:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m satseg.demo stop; fi

lock:
	$(CACHE_DIR)/uv/bin/uv pip compile --python $(PYTHON) requirements.txt -o requirements.lock
	$(CACHE_DIR)/uv/bin/uv pip compile --python $(PYTHON) requirements-dev.txt -c requirements.lock -o requirements-dev.lock

bench: venv
	$(BIN)/python bench/preprocess.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/predict.py

clean-venv:
	rm -rf $(VENV) $(VENV_DIR)
