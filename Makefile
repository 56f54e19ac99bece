# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU machine this project is developed on has exactly this torch on disk;
# installing it first keeps pip from resolving a newer multi-GB CUDA build.
# On a GPU machine the same pin resolves to the CUDA build from PyPI.
TORCH ?= torch==2.13.0
LINTED := platform tests jobs benchmarks

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

# mypy and the unit tier need no cluster and one core: they run beside the cluster tier,
# in CPU time it leaves idle (tests/in_idle_time.py), and print when it is done.
test: dev-install
	$(BIN)/ruff check $(LINTED)
	@$(BIN)/python tests/in_idle_time.py sh -c \
		'$(BIN)/mypy && $(BIN)/python -m pytest -p no:cacheprovider tests/unit' \
		> $(VENV)/unit-tier.log 2>&1 & beside=$$!; \
	$(BIN)/python -m pytest --ignore=tests/unit; cluster=$$?; \
	wait $$beside; beside=$$?; \
	cat $(VENV)/unit-tier.log; \
	[ $$cluster -eq 0 ] && [ $$beside -eq 0 ]

lint: dev-install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/mypy

clean:
	rm -rf $(VENV)
