# Two commands do all set-up on a fresh machine:
#   make demo       create .venv and run the main job on the bundled toy data
#   make test       create .venv and run the test suite
# and one checks the declared dependency floors:
#   make test-min   create .venv-min with every dependency at its floor and run the fast tests there
# and one the wheel that `pip install flowmix` gets:
#   make wheel-check  build a wheel, install it outside the checkout, import it, compile its kernel
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_INSTALL := $(BIN)/pip install -c constraints.txt
MIN_VENV := .venv-min
MIN_BIN := $(MIN_VENV)/bin
MIN_STAMP := $(MIN_VENV)/.installed

.PHONY: venv demo test test-min test-all bench lint clean docs docs-quick docs-check docs-clean wheel-check

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

# What `pip install flowmix` gets: a wheel built from a copy of this checkout (with .venv's setuptools,
# nothing downloaded), installed read-only into a temporary folder outside it, imports from there and
# compiles its spline kernel from the wheel's own C source into an empty cache (else spline flows
# would quietly train with the slower torch step).
define WHEEL_CHECK_PY
import pathlib, sys

import flowmix
from flowmix.flows import spline_native

site, cache = (pathlib.Path(p).resolve() for p in sys.argv[1:3])
where = pathlib.Path(flowmix.__file__).resolve()
assert where.is_relative_to(site), f"flowmix was imported from {where}, not from the wheel in {site}"
assert spline_native.SOURCE.is_file(), f"the wheel has no {spline_native.SOURCE.name}"
built = spline_native.build()
assert built.parent.resolve() == cache, f"the kernel was built in {built.parent}, not in {cache}"
assert not list(site.rglob("*.so")), "something was compiled into the install folder"
assert spline_native.library() is not None, "the compiled kernel does not load"
print(f"wheel-check: flowmix {flowmix.__version__} from {where.parent}, kernel compiled to {built}")
endef
export WHEEL_CHECK_PY

wheel-check: venv
	@set -e; tmp=$$(mktemp -d); trap 'chmod -R u+w "$$tmp"; rm -rf "$$tmp"' EXIT; \
	tar -c --exclude=__pycache__ --exclude='*.egg-info' src pyproject.toml README.md LICENSE \
		| tar -x -C "$$tmp" --one-top-level=tree; \
	$(BIN)/pip wheel -q --no-deps --no-build-isolation --no-index --disable-pip-version-check \
		-w "$$tmp/dist" "$$tmp/tree"; \
	$(BIN)/pip install -q --no-deps --no-index --disable-pip-version-check --target "$$tmp/site" \
		"$$tmp"/dist/flowmix-*.whl; \
	chmod -R a-w "$$tmp/site"; \
	python="$(CURDIR)/$(BIN)/python"; cd "$$tmp"; \
	PYTHONPATH="$$tmp/site" FLOWMIX_CACHE_DIR="$$tmp/cache" FLOWMIX_NATIVE=1 PYTHONDONTWRITEBYTECODE=1 \
		"$$python" -W error::RuntimeWarning -c "$$WHEEL_CHECK_PY" "$$tmp/site" "$$tmp/cache"

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
