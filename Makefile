# The commands the README names. Everything runs from the project's own virtualenv (.venv), created
# from uv.lock on first use; a machine needs only Python 3.11, Java 17 and npm.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3.11
VENV := .venv
UV_VERSION := 0.13.9
UV := $(VENV)/bin/uv
RUN := $(VENV)/bin
STAGE ?= dev
export UV_PYTHON_DOWNLOADS := never
export SAM_CLI_TELEMETRY := 0
# sam validate and the tests need some region; deploy and the CLI use your AWS profile's.
validate test: export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help demo test bench build deploy lint format layer-requirements check-layer-requirements validate clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-26s %s\n", $$1, $$2}'

$(VENV)/.synced: pyproject.toml uv.lock
	@test -x $(UV) || { $(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION); }
	$(UV) sync --frozen --quiet
	@touch $@

demo: $(VENV)/.synced  ## start the local stack, replay three demo users over HTTP, print what they earned
	$(RUN)/engage demo

test: $(VENV)/.synced lint validate check-layer-requirements  ## lint, template checks, then every test (unit, DynamoDB Local, HTTP)
	$(RUN)/pytest -q -p no:cacheprovider

bench: $(VENV)/.synced  ## measure against DynamoDB Local and write docs/benchmarks.md
	$(RUN)/engage bench --output docs/benchmarks.md

lint: $(VENV)/.synced  ## ruff lint + format check, mypy on the layer and the handlers
	$(RUN)/ruff check .
	$(RUN)/ruff format --check .
	$(RUN)/mypy layers/engage/engage
	@for handler in functions/*/app.py; do $(RUN)/mypy $$handler || exit 1; done

format: $(VENV)/.synced  ## apply ruff's formatting and safe fixes
	$(RUN)/ruff check --fix .
	$(RUN)/ruff format .

validate: $(VENV)/.synced  ## sam validate --lint (cfn-lint) on template.yaml
	$(RUN)/sam validate --lint --config-file infra/samconfig.toml

build: $(VENV)/.synced  ## sam build (arm64 layer from layers/engage/requirements.txt; no Docker needed), with bytecode
	$(RUN)/sam build --config-file infra/samconfig.toml
	@# SAM unpacks wheels without compiling them, and Lambda's /opt and /var/task are read-only: without
	@# bytecode in the zip every cold start compiles each module it imports (about 3x the import time).
	@# Python 3.11 bytecode runs on any CPU; unchecked-hash: the deployed sources never change.
	$(RUN)/python -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build

deploy: build  ## sam deploy to STAGE (dev|staging|prod); needs AWS credentials
	$(RUN)/sam deploy --config-file infra/samconfig.toml $(if $(filter-out dev,$(STAGE)),--config-env $(STAGE))

# What SAM installs is pinned from uv.lock: the layer gets the runtime dependencies, the deliver function
# the `deliver` group (firebase-admin and everything it pulls in).
EXPORT := $(UV) export --frozen --no-hashes --no-emit-project --no-header --quiet
LAYER_REQUIREMENTS := $(EXPORT) --no-default-groups
DELIVER_REQUIREMENTS := $(EXPORT) --only-group deliver

layer-requirements: $(VENV)/.synced  ## re-export the layer's and the deliver function's pinned requirements from uv.lock
	$(LAYER_REQUIREMENTS) -o layers/engage/requirements.txt
	$(DELIVER_REQUIREMENTS) -o functions/deliver/requirements.txt

check-layer-requirements: $(VENV)/.synced
	@diff <($(LAYER_REQUIREMENTS)) layers/engage/requirements.txt \
	  && diff <($(DELIVER_REQUIREMENTS)) functions/deliver/requirements.txt \
	  || { echo "a requirements.txt is out of date with uv.lock: run make layer-requirements"; exit 1; }

clean:  ## remove build output and caches (keeps .venv and the DynamoDB Local download)
	rm -rf .aws-sam .pytest_cache .ruff_cache .mypy_cache .hypothesis
