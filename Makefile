# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU machine this project is developed on has exactly this torch on disk;
# installing it first keeps pip from resolving a newer multi-GB CUDA build.
# On a GPU machine the same pin resolves to the CUDA build from PyPI.
TORCH ?= torch==2.13.0

.PHONY: demo test lint install dev-install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed
dev-install: $(VENV)/.dev-installed

demo: install
	$(BIN)/tandem quickstart

test: dev-install lint
	$(BIN)/python -m pytest

lint: dev-install
	$(BIN)/ruff check platform tests jobs benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV)
