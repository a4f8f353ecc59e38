# Everything runs from the project's own virtual environment, built from uv.lock.
# uv comes from PATH when it is there; otherwise it is installed, hash-pinned
# (tools/uv-requirements.txt), into a private virtual environment in .tools/: never into the
# system's interpreter, so a stock Debian or Ubuntu python3 (PEP 668) works as it is.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
PYTHON ?= python3
TOOLS := .tools
UV ?= $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
PYTEST_ARGS ?=
CHECKOV_VERSION ?= 3.3.30
CHECKOV = $(UV) tool run --from checkov==$(CHECKOV_VERSION) checkov --quiet --compact --skip-download

.PHONY: venv test test-fast lint lint-deploy typecheck check demo console clean

venv: .venv/.synced

$(TOOLS)/bin/uv: tools/uv-requirements.txt
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { echo "make: $(PYTHON) has no venv module; on Debian or Ubuntu: sudo apt-get install python3-venv" >&2; exit 2; }
	rm -rf $(TOOLS) && $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r tools/uv-requirements.txt
	@touch $@

.venv/.synced: pyproject.toml uv.lock $(if $(filter $(TOOLS)/bin/uv,$(UV)),$(TOOLS)/bin/uv)
	$(UV) sync --frozen
	@touch $@

# The whole pipeline on a local stack: demo/__main__.py starts and stops every server it needs.
demo: venv
	.venv/bin/python -m demo

# The web console over the demo's local stack (demo/console.py), with its URL printed, until Ctrl-C.
console: venv
	.venv/bin/python -m demo.console

test: venv
	.venv/bin/python -m pytest $(PYTEST_ARGS)

# The unit tests only (markers: tests/conftest.py), on two processes: under a minute.
test-fast: venv
	.venv/bin/python -m pytest -m unit -q -n 2 $(PYTEST_ARGS)

# ruff, then the layers of docs/architecture.md (import-linter's contracts in pyproject.toml).
lint: venv
	.venv/bin/ruff check worker tests demo bench
	.venv/bin/ruff format --check worker tests demo bench
	.venv/bin/lint-imports --no-cache --no-logo

# The Dockerfile and terraform/: hadolint; terraform fmt, then terraform validate where the
# providers can be installed (terraform/scripts/validate.sh says when they cannot: a local
# provider mirror is used when TF_PLUGIN_DIR names one); then checkov (findings fail; skips
# only inline, with a reason). checkov pins an older boto3 than the worker's, so it cannot share
# uv.lock: uv runs it from a separate, cached tool environment.
TERRAFORM ?= terraform
TF_PLUGIN_DIR ?= $(wildcard /opt/tf-plugins)
lint-deploy: venv
	.venv/bin/hadolint Dockerfile
	@if command -v $(TERRAFORM) >/dev/null 2>&1; then \
		echo "$(TERRAFORM) fmt -check -recursive terraform"; \
		$(TERRAFORM) fmt -check -recursive -diff terraform; \
	else echo "terraform fmt: skipped, no terraform binary (set TERRAFORM)"; fi
	TERRAFORM=$(TERRAFORM) TF_PLUGIN_DIR=$(TF_PLUGIN_DIR) terraform/scripts/validate.sh
	$(CHECKOV) --framework terraform --directory terraform \
		--var-file terraform/terraform.tfvars.example
	$(CHECKOV) --framework dockerfile --file Dockerfile

typecheck: venv
	.venv/bin/mypy

check: lint lint-deploy typecheck test

clean:
	rm -rf .venv $(TOOLS) .mypy_cache .pytest_cache .ruff_cache
