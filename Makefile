# The targets a person and CI both use. `make test` installs everything it needs itself.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# uv must never download an interpreter: it uses the Python this Makefile finds.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv

# The first Python >= 3.12 on PATH (3.12 preferred: the project is developed on it), else pyenv's.
PYTHON ?= $(shell \
  ok() { "$$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }; \
  for c in python3.12 python3 python3.13; do \
    p=$$(command -v $$c 2>/dev/null) && ok "$$p" && { echo "$$p"; exit 0; }; \
  done; \
  if command -v pyenv >/dev/null 2>&1; then \
    for v in $$(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9]|[2-9][0-9])' | sort -V); do \
      p=$$(PYENV_VERSION=$$v pyenv which python 2>/dev/null) && ok "$$p" && { echo "$$p"; exit 0; }; \
    done; \
  fi)

UV = $(PYTHON) -m uv
RUN = $(UV) run --no-sync

.PHONY: help python uv install lint format test bench run ui clean

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

python:
	@if [ -z "$(PYTHON)" ]; then echo "No Python >= 3.12 found (tried PATH and pyenv)." >&2; exit 1; fi

uv: python
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv \
	  || $(PYTHON) -m pip install --quiet --user --break-system-packages uv

install: uv  ## Create .venv with every extra and the dev tools, exactly as uv.lock pins them.
	$(UV) sync --locked --all-extras --python $(PYTHON)

lint: install  ## Formatting, lint, strict typing of periscope/, import contracts.
	$(RUN) ruff format --check .
	$(RUN) ruff check .
	$(RUN) mypy
	$(RUN) lint-imports

format: install  ## Rewrite files with ruff's formatter and safe fixes.
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

test: lint  ## Install, lint, then run the whole suite (slow tests included).
	$(RUN) pytest

bench: install  ## Run the benchmarks side by side with their peers; writes benchmarks/RESULTS.md.
	$(RUN) python -m benchmarks

# The pipeline's local state: published runs, history and Prefect's database under ./data.
DATA ?= $(CURDIR)/data
PREFECT_UI_URL := http://127.0.0.1:4200
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

run: install  ## The main job: run the pipeline once (simulated market without MASSIVE_API_KEY), publish to ./data.
	@mkdir -p "$(DATA)/prefect"
	PERISCOPE_DATA_ROOT="$${PERISCOPE_DATA_ROOT:-$(DATA)}" PREFECT_HOME="$${PREFECT_HOME:-$(DATA)/prefect}" \
	  $(RUN) periscope run

ui: install  ## Prefect server and UI on 127.0.0.1:4200 (state in ./data/prefect), serving the schedules.
	@mkdir -p "$(DATA)/prefect"
	@export PREFECT_HOME="$${PREFECT_HOME:-$(DATA)/prefect}" PREFECT_API_URL="$(PREFECT_UI_URL)/api" \
	  PERISCOPE_DATA_ROOT="$${PERISCOPE_DATA_ROOT:-$(DATA)}"; \
	$(RUN) prefect server start --host 127.0.0.1 --port 4200 & server=$$!; \
	trap 'kill $$server 2>/dev/null; wait $$server 2>/dev/null' EXIT INT TERM; \
	for _ in $$(seq 90); do \
	  $(RUN) python -c 'import urllib.request as u; u.urlopen("$(PREFECT_UI_URL)/api/health")' \
	    2>/dev/null && break; sleep 2; \
	done; \
	echo "Prefect UI: $(PREFECT_UI_URL)  (Ctrl-C stops the server and pauses the schedules)"; \
	$(RUN) periscope serve

clean:  ## Remove the environment and caches.
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache .hypothesis
