# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := contracts common testkit tools data-sidecar dummy-job workflow-api provisioner

.PHONY: run test lint typecheck install
run: install
	$(BIN)/provisioner dev

test: install lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# From the venv's folder: at the root, the folder provisioner/ would hide the package.
	cd $(VENV) && bin/lint-imports ../pyproject.toml

typecheck: install
	$(BIN)/mypy contracts/workflow_contracts common/workflow_common workflow-api/workflow_api data-sidecar/data_sidecar dummy-job/dummy_job provisioner/provisioner \
		testkit/workflow_testkit tools/dockerfile_lint

install: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt $(foreach p,$(PACKAGES),-e ./$(p))
	touch $@
