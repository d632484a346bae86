# The two commands: `make run` starts the monitor on ./config; `make test` runs every check.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run poll test test-postgres lint typecheck pytest check-deploy lock clean

# Dependencies come from the hashed lock file, so every machine gets the same versions.
$(BIN)/monitor: pyproject.toml requirements-dev.lock monitor/_speedups.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(BIN)/monitor

run: $(BIN)/monitor
	$(BIN)/monitor run

poll: $(BIN)/monitor
	$(BIN)/monitor poll

test: lint typecheck pytest

lint: $(BIN)/monitor
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/monitor
	$(BIN)/mypy

pytest: $(BIN)/monitor
	$(BIN)/pytest

# The suite again with every monitor under test (`monitor poll`, `monitor run`, the CLI) on a
# fresh PostgreSQL database of its own, at $MONITOR_TEST_POSTGRES_URL's server (default
# postgresql+psycopg://postgres@127.0.0.1:5432/test). CI runs it after `make test`.
test-postgres: $(BIN)/monitor
	MONITOR_TEST_DATABASE=postgresql $(BIN)/pytest

# Static security checks of the Dockerfile and the Kubernetes manifests (checkov, in its own
# virtualenv: it is a tool, not a dependency of the monitor).
CHECKOV_VERSION ?= 3.3.30
.tools/bin/checkov:
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)

check-deploy: .tools/bin/checkov
	.tools/bin/checkov --quiet --compact --skip-download --framework dockerfile -f Dockerfile
	.tools/bin/checkov --quiet --compact --skip-download --framework kubernetes -d deploy/kubernetes

# Regenerate both lock files from pyproject.toml (after changing a dependency).
lock:
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet pip-tools
	.lock-venv/bin/pip-compile -q --generate-hashes --strip-extras --allow-unsafe \
	  --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
	.lock-venv/bin/pip-compile -q --generate-hashes --strip-extras --allow-unsafe \
	  --no-emit-index-url --no-emit-find-links --extra dev -o requirements-dev.lock pyproject.toml
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .tools .mypy_cache .pytest_cache .ruff_cache
