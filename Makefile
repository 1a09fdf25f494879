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

.PHONY: venv demo test test-min test-all bench lint clean docs docs-quick docs-check docs-clean

$(BIN)/activate: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(PIP_INSTALL) -q torch==2.13.0
	$(PIP_INSTALL) -q -e '.[dev]'
	$(BIN)/python -c 'from flowmix.flows.spline_native import build_or_explain; print(build_or_explain())'
	touch $(BIN)/activate

venv: $(BIN)/activate

demo: venv
	$(BIN)/flowmix demo --out results/demo

# The paper presets' bit-for-bit reference (tests/test_reference.py) was written with torch's AVX2
# kernels; a CPU where torch would pick AVX-512 runs it again with AVX2 (it skips on another CPU).
test: lint
	$(BIN)/python -m pytest -q
	ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_reference.py -rs

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

# Documentation: docs/_build/html/index.html. Warnings are errors (broken cross-references, a
# public name without a docstring, a failing gallery example). `docs` runs every gallery example;
# `docs-quick` (CI) runs only the fastest, named in docs/conf.py. A build of the other mode is
# wiped first, since sphinx-gallery would otherwise keep pages built without their figures.
DOCS_STAMP := $(VENV)/.docs-installed
DOCS_BUILD := docs/_build
SPHINX := $(BIN)/sphinx-build -b html -W --keep-going -q -d $(DOCS_BUILD)/doctrees docs $(DOCS_BUILD)/html

$(DOCS_STAMP): $(BIN)/activate pyproject.toml
	$(PIP_INSTALL) -q -e '.[dev,docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	@[ "$$(cat $(DOCS_BUILD)/.mode 2>/dev/null)" = full ] || rm -rf $(DOCS_BUILD) docs/auto_examples
	MPLBACKEND=Agg $(SPHINX)
	echo full > $(DOCS_BUILD)/.mode
	@echo "docs: open $(DOCS_BUILD)/html/index.html"

docs-quick: $(DOCS_STAMP)
	@[ "$$(cat $(DOCS_BUILD)/.mode 2>/dev/null)" = quick ] || rm -rf $(DOCS_BUILD) docs/auto_examples
	FLOWMIX_DOCS_QUICK=1 MPLBACKEND=Agg $(SPHINX)
	echo quick > $(DOCS_BUILD)/.mode

# Opens the built site in headless Chromium (Debian's package, installed here when missing and we
# are root) and checks every internal link; without Chromium the browser pass is skipped, saying so.
docs-check: venv
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } \
		|| echo "docs-check: could not install chromium with apt-get"
	$(BIN)/python docs/check_site.py $(DOCS_BUILD)/html

docs-clean:
	rm -rf $(DOCS_BUILD) docs/auto_examples docs/api/generated docs/api/_generated docs/user_guide/_generated

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean: docs-clean
	rm -rf $(VENV) $(MIN_VENV) build *.egg-info src/*.egg-info
