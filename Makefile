# Credit decision service. `make` alone lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | md5sum | cut -c1-12)
PORTAL_PORT ?= 5000
SERVING_PORT ?= 5001
CUSTOMERS ?= 1000
FLASK := $(VENV)/bin/flask --app portal

export PORTAL_PORT SERVING_PORT

.PHONY: help install run portal migrate seed test test-fast lint clean-var browser-deps

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements.txt
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@echo ">> installing requirements into $(VENV) (only when requirements.txt changes)"
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP) ## install pinned requirements into .venv (skipped when nothing changed)

migrate: install ## apply the ledger's migrations (DATABASE_URL, default var/credit.db)
	@$(FLASK) migrate

seed: install ## migrate and load the demo ledger if it is empty (CUSTOMERS=1000)
	@$(FLASK) seed --if-empty --customers $(CUSTOMERS)
	@$(FLASK) ensure-demo

run: seed ## start the whole system on SQLite with demo data (Ctrl-C stops it)
	@echo
	@echo "  Portal:  http://127.0.0.1:$(PORTAL_PORT)/   (API: /api/..., OpenAPI: /api/openapi.json)"
	@echo "  Logins:  manager 1 / manager123    customer 101 / customer123"
	@echo
	@$(VENV)/bin/gunicorn --workers 2 --bind 127.0.0.1:$(PORTAL_PORT) --access-logfile - 'portal:create_app()'

portal: seed ## start only the portal (gunicorn on PORTAL_PORT)
	@$(VENV)/bin/gunicorn --workers 2 --bind 127.0.0.1:$(PORTAL_PORT) --access-logfile - 'portal:create_app()'

browser-deps: ## install Debian's Chromium for the browser tests (needs root; skipped if present)
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || echo "!! no Chromium: browser tests will be skipped"

test: install browser-deps ## run the whole test suite (PostgreSQL tests too when it answers; TEST_POSTGRES=1 makes that a must)
	@$(VENV)/bin/pytest -n 2 --dist loadfile

test-fast: install ## run the tests except the slow and browser ones
	@$(VENV)/bin/pytest -n 2 --dist loadfile -m "not slow and not browser"

lint: install ## check style with ruff
	@$(VENV)/bin/ruff check portal pipeline model_registry serving tests bench

clean-var: ## delete all runtime state (ledger, MLflow store, secret key)
	rm -rf var/
