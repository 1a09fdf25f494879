# Two commands do all set-up on a fresh machine:
#   make demo       create .venv and run the main job on the bundled toy data
#   make test       create .venv and run the test suite
# and one checks the declared dependency floors:
#   make test-min   create .venv-min with every dependency at its floor and run the fast tests there
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_INSTALL := $(BIN)/pip install -c constraints.txt
MIN_VENV := .venv-min
MIN_BIN := $(MIN_VENV)/bin
MIN_STAMP := $(MIN_VENV)/.installed

.PHONY: venv demo test test-min test-all bench lint clean

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

# The floors of pyproject.toml, pinned (.ci/min_constraints.py), and torch as constraints.txt pins it.
# Rebuilt from scratch when the floors change, so no newer version lingers; the stamp is written last,
# so an install that failed half-way is redone. Wheels only: a floor without a wheel for this Python
# is a floor nobody can install.
$(MIN_STAMP): pyproject.toml constraints.txt .ci/min_constraints.py
	rm -rf $(MIN_VENV)
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_BIN)/pip install -q --upgrade pip
	$(MIN_BIN)/python .ci/min_constraints.py pyproject.toml --extra test --skip-pinned constraints.txt \
		> $(MIN_VENV)/min-constraints.txt
	$(MIN_BIN)/pip install -q --only-binary=:all: -c constraints.txt -c $(MIN_VENV)/min-constraints.txt torch==2.13.0
	$(MIN_BIN)/pip install -q --only-binary=:all: -c constraints.txt -c $(MIN_VENV)/min-constraints.txt -e '.[test]'
	$(MIN_BIN)/pip check
	touch $(MIN_STAMP)

test-min: $(MIN_STAMP)
	cat $(MIN_VENV)/min-constraints.txt
	$(MIN_BIN)/python -m pytest -q -p no:cacheprovider

test-all: venv
	$(BIN)/python -m pytest -q -m ''

bench: venv
	$(PIP_INSTALL) -q -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(MIN_VENV) build *.egg-info src/*.egg-info
