# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config.yaml

.PHONY: run dev test test-fast lint format bench clean

# The version of $(PYTHON), or "old" below 3.11: checked before anything is installed,
# and recorded in the venv, so that a venv made by another Python is made again.
PYVER := $(shell $(PYTHON) -c 'import sys; v = sys.version_info; print(f"{v[0]}.{v[1]}" if v >= (3, 11) else "old")' 2>/dev/null)
MADE  := $(VENV)/.made-by-python-$(PYVER)

$(MADE):
	@if [ -z "$(PYVER)" ] || [ "$(PYVER)" = old ]; then \
	  echo "Webhook Bridge needs Python 3.11 or newer, and '$(PYTHON)' is $$($(PYTHON) --version 2>&1 || echo 'not installed'). Install one, or name it: make PYTHON=python3.12 run" >&2; \
	  exit 1; fi
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

$(VENV)/.runtime: requirements.txt $(MADE)
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(MADE)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

run: $(VENV)/.runtime  ## start gunicorn on 127.0.0.1:8001 with config.yaml
	BRIDGE_CONFIG=$(CONFIG) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

dev: $(VENV)/.runtime  ## Flask's development server with reload
	BRIDGE_CONFIG=$(CONFIG) $(BIN)/flask --app app run --port 8001 --debug

test: $(VENV)/.dev  ## install dev dependencies and run every test
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto

test-fast: $(VENV)/.dev  ## the inner loop: every test but the slow ones (real servers, fuzzing)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto -m "not slow"

bench: $(VENV)/.dev  ## the benchmark (a few minutes); figures in bench/RESULTS.md
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(BIN)/python -m bench

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
