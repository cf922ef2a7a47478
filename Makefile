# stt-gateway developer commands. `make run` and `make test` are all a new machine needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint fmt bench screenshots clean dashboards monitor-up monitor-down monitor-logs monitor-reload

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,local]'
	touch $(STAMP)

## Run the gateway: embedded Redis; local Whisper tiny.en unless OPENAI_API_KEY is set.
## `exec`: the gateway takes the shell's place, so a signal to make (which make passes on
## to its child) reaches the gateway itself and nothing is left holding the port.
run: $(STAMP)
	LOG_FORMAT=$${LOG_FORMAT:-console} exec $(BIN)/stt-gateway serve

## Run the whole test suite (the command CI runs), with branch coverage of every process
## it starts; it fails under 90 %.
test: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider --cov --cov-report=term --cov-fail-under=90

## The edit loop: unit tests and the app in-process (tests/unit, tests/app), two workers
## (most of their time is spent waiting on sockets), no coverage. The system and deploy tests
## (processes, browsers, clusters, load, manifests) run in `make test`.
test-fast: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -n 2 tests/unit tests/app

## A short capacity benchmark (bare sink vs gateway); writes docs-ready output to bench.md.
bench: $(STAMP)
	$(BIN)/stt-loadtest capacity --steps 50,200 --step-seconds 10 --loaders 1 --markdown bench.md --json bench.json
	@echo "wrote bench.md and bench.json"

## Refresh the pages' screenshots in docs/pages/ from the browser tests (run into build/pages/).
screenshots: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/system/test_pages_browser.py
	cp build/pages/*.png docs/pages/

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

## Regenerate dashboards/grafana/*.json from dashboards/generate.py.
dashboards: $(STAMP)
	$(BIN)/python dashboards/generate.py

## The stack: gateway + Redis, with Prometheus, Grafana (http://localhost:3000, admin/admin)
## and Alertmanager in the "monitoring" profile.
COMPOSE ?= docker compose
monitor-up:
	$(COMPOSE) --profile monitoring up -d --build
	@echo "Grafana: http://localhost:$${GRAFANA_PORT:-3000} (admin / $${GRAFANA_ADMIN_PASSWORD:-admin})"
	@echo "Prometheus: http://localhost:$${PROMETHEUS_PORT:-9090}  Alertmanager: http://localhost:$${ALERTMANAGER_PORT:-9093}"

monitor-down:
	$(COMPOSE) --profile monitoring down

monitor-logs:
	$(COMPOSE) --profile monitoring logs -f --tail=100

## Reload Prometheus rules and config without a restart.
monitor-reload:
	curl -fsS -X POST http://localhost:$${PROMETHEUS_PORT:-9090}/-/reload && echo "Prometheus reloaded"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
