# Every target sets itself up: a fresh clone with Python 3, pip and make is enough.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SEEDS  ?= 1000
START  ?= 0
# The whole-node simulator (tests/sim_node) runs after the core simulator:
# NODE_SEEDS seeds from NODE_START, minus NODE_SKIP (comma-separated seeds
# that fail only because of a known bug being fixed; empty when none).
NODE_SEEDS ?= $(SEEDS)
NODE_START ?= $(START)
NODE_SKIP  ?=
# Known bugs (keys of tests/sim_node/known.py) whose seeds are reported as
# KNOWN instead of failing: each leaves this list when its fix lands.
NODE_TOLERATE ?=
# What `make test` (and so CI) runs of it: every coverage row is reached by these.
CI_NODE_SEEDS ?= 60
CI_NODE_SKIP  ?=

.PHONY: test demo bench sim mutants proto lint clean

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
	$(BIN)/ruff check nexus_raft tests bench tools examples
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider
	$(MAKE) --no-print-directory sim SEEDS=500 START=0 NODE_SEEDS=$(CI_NODE_SEEDS) NODE_START=0 NODE_SKIP='$(CI_NODE_SKIP)'

sim: $(VENV)/.installed-test
	$(BIN)/python -m tests.sim --seeds $(SEEDS) --start $(START) --require-coverage
	$(BIN)/python -m tests.sim_node --seeds $(NODE_SEEDS) --start $(NODE_START) --skip '$(NODE_SKIP)' --tolerate '$(NODE_TOLERATE)'

# The mutation check (issue 11): every deliberate safety bug must be caught.
mutants: $(VENV)/.installed-test
	$(BIN)/python -m tools.mutants --seeds 500

demo: $(VENV)/.installed-test
	$(BIN)/python -m nexus_raft.demo

bench: $(VENV)/.installed-bench
	$(BIN)/python bench/storage.py
	$(BIN)/python bench/transport.py
	$(BIN)/python bench/core.py
	$(BIN)/python bench/node.py
	$(BIN)/python bench/cluster.py
	$(BIN)/python bench/etcd_compat.py
	$(BIN)/python bench/witness.py
	$(BIN)/python bench/witness_stall.py
	$(BIN)/python bench/sim_node.py

proto: $(VENV)/.installed-test
	$(BIN)/python -m nexus_raft.transport.protogen

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
