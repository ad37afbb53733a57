# Every target sets itself up: a fresh clone with Python 3, pip and make is enough.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SEEDS  ?= 1000
START  ?= 0

.PHONY: test demo bench sim proto lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { $(PYTHON) -m pip install --user -q virtualenv && $(PYTHON) -m virtualenv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-test
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@

lint: $(VENV)/.installed-test
	$(BIN)/ruff check nexus_raft tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider
	$(MAKE) --no-print-directory sim SEEDS=500 START=0

sim: $(VENV)/.installed-test
	$(BIN)/python -m tests.sim --seeds $(SEEDS) --start $(START)

demo: $(VENV)/.installed-test
	$(BIN)/python -m nexus_raft.demo

bench: $(VENV)/.installed-bench
	$(BIN)/python bench/storage.py
	$(BIN)/python bench/transport.py
	$(BIN)/python bench/core.py
	$(BIN)/python bench/node.py
	$(BIN)/python bench/cluster.py
	$(BIN)/python bench/witness.py
	$(BIN)/python bench/witness_stall.py

proto: $(VENV)/.installed-test
	$(BIN)/python -m nexus_raft.transport.protogen

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
