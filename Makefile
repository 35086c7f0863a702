# Credit decision service. `make` alone lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | md5sum | cut -c1-12)
PORTAL_PORT ?= 5000
SERVING_PORT ?= 5001
WORKBENCH_PORT ?= 5003
CUSTOMERS ?= 1000
FLASK := $(VENV)/bin/flask --app portal
SERVING_URL ?= http://127.0.0.1:$(SERVING_PORT)
WORKBENCH_URL ?= http://127.0.0.1:$(WORKBENCH_PORT)
VAR_DIR ?= $(CURDIR)/var
PROMETHEUS_MULTIPROC_DIR ?= $(VAR_DIR)/prometheus
# The secret portal and serving share (serving demands it and signs its answers with it):
# SERVING_TOKEN when set, else one generated once under VAR_DIR, like the portal's SECRET_KEY.
TOKEN_FILE = $(VAR_DIR)/serving_token
WITH_TOKEN = SERVING_TOKEN=$${SERVING_TOKEN:-$$(cat $(TOKEN_FILE))}
# Login throttling shares its counters through Redis: REDIS_URL, else a Redis answering on its default
# local port; with neither, the portal runs as one process whose threads share the counters in memory.
LOCAL_REDIS = $(shell $(PYTHON) -c "import socket; s = socket.socket(); s.settimeout(0.3); print('redis://127.0.0.1:6379/0' if s.connect_ex(('127.0.0.1', 6379)) == 0 else '')")
PORTAL_REDIS = $(or $(REDIS_URL),$(LOCAL_REDIS))
# Threads (greenlets on PostgreSQL: deploy/portal_gunicorn.py), not processes, wait on the decision service
# and the database: a slow answer holds one of a worker's requests, not the worker.
PORTAL_CMD = REDIS_URL=$(PORTAL_REDIS) $(WITH_TOKEN) $(VENV)/bin/gunicorn -c $(CURDIR)/deploy/portal_gunicorn.py \
	--workers $(if $(PORTAL_REDIS),2,1) --threads $(if $(PORTAL_REDIS),8,16) --bind 127.0.0.1:$(PORTAL_PORT) --no-control-socket --access-logfile - 'portal:create_app()'
SERVE_CMD = rm -rf $(PROMETHEUS_MULTIPROC_DIR) && mkdir -p $(PROMETHEUS_MULTIPROC_DIR) && \
	$(WITH_TOKEN) PROMETHEUS_MULTIPROC_DIR=$(PROMETHEUS_MULTIPROC_DIR) $(VENV)/bin/gunicorn --workers 2 --bind 127.0.0.1:$(SERVING_PORT) --no-control-socket --access-logfile - 'serving:create_app()'
# The model workbench: one worker (the retrain jobs it starts are its children), threads for the pages' calls.
WORKBENCH_CMD = $(WITH_TOKEN) $(VENV)/bin/gunicorn --worker-class gthread --workers 1 --threads 4 --timeout 120 \
	--bind 127.0.0.1:$(WORKBENCH_PORT) --no-control-socket --access-logfile - 'pipeline.workbench:create_app()'

# The registered model of make models / promote / rollback / challenge: NAME=..., else credit-approval.
REGISTRY_NAME = $(if $(NAME),--name "$(NAME)")

export PORTAL_PORT SERVING_PORT SERVING_URL WORKBENCH_PORT WORKBENCH_URL VAR_DIR

.PHONY: help install run portal serve migrate seed data model train promote rollback challenge models mlflow-ui monitor \
	bench test test-fast lint clean-var browser-deps cluster cluster-deps screenshots mailer translations workbench

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

data: migrate ## simulate the demo customers (pipeline) and import their export into an empty ledger (portal); never in production
	@if $(FLASK) wants-demo; then \
		$(PY) -m pipeline.simulate --customers $(CUSTOMERS) --out $(VAR_DIR)/data && \
		$(FLASK) import-data $(VAR_DIR)/data --demo; \
	fi
	@$(FLASK) settle-bank-credit

seed: data ## the same as `make data`

model: data ## train and promote a first model when there is no champion yet
	@$(PY) -m pipeline.run --if-no-champion

$(TOKEN_FILE): | $(STAMP)
	@mkdir -p $(VAR_DIR) && umask 077 && $(PY) -c "import secrets; print(secrets.token_hex(32))" > $@

# The addresses are printed once serving has loaded its model (/ready) and the portal answers.
RUN_URLS = echo; \
	echo "  Portal:   http://127.0.0.1:$(PORTAL_PORT)/   (API: /api/..., OpenAPI: /api/openapi.json)"; \
	echo "  Serving:  $(SERVING_URL)/version   (decisions: POST /v1/decisions, MLflow protocol: POST /invocations)"; \
	echo "  Workbench: http://127.0.0.1:$(PORTAL_PORT)/manager/workbench   (its service: $(WORKBENCH_URL))"; \
	echo "  Logins:   manager 1 / manager123    customer 101 / customer123"; \
	echo "  Emails:   $(if $(SMTP_URL),sent through SMTP_URL,written to $(VAR_DIR)/mail/*.eml (set SMTP_URL to send them))"; echo

run: model $(TOKEN_FILE) ## start the whole system on SQLite: demo data, a trained model, serving, the workbench, the mailer and the portal (Ctrl-C stops all)
	@($(SERVE_CMD)) & SERVE_PID=$$!; $(FLASK) mailer & MAIL_PID=$$!; ($(WORKBENCH_CMD)) & BENCH_PID=$$!; \
	trap 'kill $$SERVE_PID $$MAIL_PID $$BENCH_PID 2>/dev/null; wait $$SERVE_PID $$MAIL_PID $$BENCH_PID 2>/dev/null' EXIT INT TERM; \
	($(PY) -m deploy.ready "$(SERVING_URL)/ready" "http://127.0.0.1:$(PORTAL_PORT)/" && { $(RUN_URLS); }) & \
	$(PORTAL_CMD)

portal: data $(TOKEN_FILE) ## start only the portal (gunicorn on PORTAL_PORT)
	@$(PORTAL_CMD)

mailer: migrate ## only the email sender: delivers the outbox to SMTP_URL, or as .eml files under VAR_DIR/mail without it
	@$(FLASK) mailer

workbench: install $(TOKEN_FILE) ## start only the model workbench service (gunicorn on WORKBENCH_PORT): the portal's /manager/workbench calls it
	@$(WORKBENCH_CMD)

serve: install $(TOKEN_FILE) ## start only the decision service (gunicorn on SERVING_PORT, loads SERVING_MODEL, default credit-approval@champion)
	@$(SERVE_CMD)

train: $(if $(DATA)$(SPEC),install,data) ## dataset -> train -> evaluate -> register -> gate; DATA=file SPEC=spec.yaml for your own table, TRAIN_ARGS="--seed 7 ..." (python -m pipeline.run --help)
	@$(PY) -m pipeline.run $(if $(DATA),--data "$(DATA)") $(if $(SPEC),--spec "$(SPEC)") $(TRAIN_ARGS)

promote: install ## give VERSION=n the champion alias: WHY="..." is required (appended to the audit log); NAME=model (default credit-approval)
	@test -n "$(VERSION)" -a -n "$(WHY)" || { echo 'usage: make promote VERSION=n WHY="reason" [NAME=model]'; exit 2; }
	@$(PY) -m model_registry $(REGISTRY_NAME) promote $(VERSION) --why "$(WHY)"

rollback: install ## move the champion alias back to the previous champion: WHY="..." is required; NAME=model
	@test -n "$(WHY)" || { echo 'usage: make rollback WHY="reason" [NAME=model]'; exit 2; }
	@$(PY) -m model_registry $(REGISTRY_NAME) rollback --why "$(WHY)"

challenge: install ## give VERSION=n the challenger alias (serving scores it in the champion's shadow), or VERSION=none to clear it: WHY="..." is required; NAME=model
	@test -n "$(VERSION)" -a -n "$(WHY)" || { echo 'usage: make challenge VERSION=n|none WHY="reason" [NAME=model]'; exit 2; }
	@$(PY) -m model_registry $(REGISTRY_NAME) challenge $(if $(filter none,$(VERSION)),--clear,$(VERSION)) --why "$(WHY)"

models: install ## list the registered versions, key metrics and the champion's audited history; NAME=model (default credit-approval)
	@$(PY) -m model_registry $(REGISTRY_NAME) describe

mlflow-ui: install ## open MLflow's UI on the local store (port MLFLOW_UI_PORT, default 5002)
	@$(PY) -m model_registry ui

monitor: install ## drift of recent ML decisions per model version (exit 1 when shifted); OUTCOMES=file adds realised metrics
	@$(PY) -m pipeline.monitor $(if $(OUTCOMES),--outcomes "$(OUTCOMES)")

cluster: install cluster-deps ## the deployed topology on this machine: PostgreSQL, Redis, MLflow server, 2 portals + 2 serving behind nginx (Ctrl-C stops it)
	@$(PY) -m deploy.cluster

bench: model cluster-deps ## run every benchmark in bench/ (about 20 min) and write docs/benchmarks.md
	@$(PY) -m bench.report

screenshots: install browser-deps ## run the demo (make run in a throwaway VAR_DIR) and regenerate every picture in docs/screenshots/
	@$(PY) -m deploy.screenshots

browser-deps: ## install Debian's Chromium for the browser tests (needs root; skipped if present)
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || echo "!! no Chromium: browser tests will be skipped"

cluster-deps: ## install Debian's nginx, wrk and redis-server for make cluster, its tests and make bench (needs root; skipped if present)
	@{ test -x /usr/sbin/nginx && command -v wrk >/dev/null && command -v redis-server >/dev/null; } || \
	{ [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk redis-server >/dev/null; } || \
	echo "!! no nginx, wrk or redis-server: make cluster, the cluster tests and make bench need them"

test: install browser-deps cluster-deps ## run the whole test suite (PostgreSQL tests too when it answers; TEST_POSTGRES=1 makes that a must)
	@$(VENV)/bin/pytest -n 2 --dist loadfile

test-fast: install ## run the tests except the slow and browser ones
	@$(VENV)/bin/pytest -n 2 --dist loadfile -m "not slow and not browser"

# The catalogue: every text of the pages, emails and PDF statement (babel.cfg says where to look).
# The .po files and their compiled .mo files are both committed, so a fresh clone runs without this step.
PYBABEL = $(VENV)/bin/pybabel
translations: install ## extract the pages', emails' and PDF's texts (pybabel), merge them into each language's .po, compile the .mo
	@mkdir -p $(VAR_DIR)
	@$(PYBABEL) -q extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output -w 120 -o $(VAR_DIR)/messages.pot .
	@$(PYBABEL) -q update -i $(VAR_DIR)/messages.pot -d portal/translations --ignore-obsolete -w 120
	@$(PYBABEL) compile -d portal/translations --statistics

lint: install ## check style (ruff) and the borders between the blocks (import-linter, see pyproject.toml)
	@$(VENV)/bin/ruff check contracts portal pipeline model_registry serving tests bench testing deploy
	@$(VENV)/bin/lint-imports --no-cache

clean-var: ## delete all runtime state (ledger, MLflow store, secret key) under VAR_DIR
	rm -rf $(VAR_DIR)
