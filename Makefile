# Two commands do all set-up on a fresh machine:
#   make demo   create .venv and run the main job on the bundled toy data
#   make test   create .venv and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_INSTALL := $(BIN)/pip install -c constraints.txt

.PHONY: venv demo test test-all bench lint clean

$(BIN)/activate: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(PIP_INSTALL) -q torch==2.13.0
	$(PIP_INSTALL) -q -e '.[dev]'
	touch $(BIN)/activate

venv: $(BIN)/activate

demo: venv
	$(BIN)/flowmix demo --out results/demo

test: lint
	$(BIN)/python -m pytest -q

test-all: venv
	$(BIN)/python -m pytest -q -m ''

bench: venv
	$(PIP_INSTALL) -q -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
