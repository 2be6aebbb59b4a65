# Two commands for a fresh machine:  make run  |  make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test install services demo bench clean

run: install
	$(BIN)/campaign-canvas migrate
	$(BIN)/campaign-canvas demo
	$(BIN)/campaign-canvas serve

test: install services
	$(BIN)/pytest

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml examples/custom_node/setup.cfg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The tests use this machine's PostgreSQL and Redis; start them when they are installed but down.
services:
	@$(BIN)/python scripts/services.py

bench: install
	$(BIN)/python bench/engine_throughput.py

clean:
	rm -rf $(VENV) instance build *.egg-info test-artifacts
