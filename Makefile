# Achilles: entry points for the local stack, tests and checks. `make` lists them.
# The work is done by scripts/*.sh; docs/local-stack.md describes them.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

# Extra arguments for the test runner, e.g. make test ARGS="-E 'test(ingest)'"
ARGS ?=
# Dashboards for make check-dashboards (file names without .json); empty = all.
DASHBOARDS ?=

.PHONY: help up down status logs demo test bench tune-postgres fmt lint build clean-stack check-dashboards check-rules validate-helm schemathesis fuzz

help: ## List the targets
	@echo "Achilles make targets:"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

up: ## Start Postgres, Tansu (Kafka) and the four services (api, raw-sink, processor, agent); wait for /readyz
	bash scripts/stack.sh up

down: ## Stop what `make up` started (nothing else)
	bash scripts/stack.sh down

status: ## Show what runs
	bash scripts/stack.sh status

logs: ## Follow the local stack's logs (.stack/logs)
	bash scripts/stack.sh logs -f

demo: ## Bring the stack up and push one demo session through the pipeline
	bash scripts/demo.sh

test: ## Run the workspace tests against Postgres and Tansu (CI=true adds a fmt check)
	bash scripts/test.sh $(ARGS)

schemathesis: ## schemathesis against /openapi.json of an API of its own (free port, own database and topics); docs/testing.md
	bash scripts/schemathesis.sh $(ARGS)

fuzz: ## Run every cargo-fuzz target for FUZZ_SECONDS (default 600) each; docs/testing.md
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

check-dashboards: ## Real Prometheus + demo workload: every Grafana panel must show data (DASHBOARDS="overview api")
	bash scripts/check-dashboards.sh $(DASHBOARDS)

check-rules: ## promtool: check the Prometheus config and rules, run the alert unit tests
	bash scripts/check-rules.sh

validate-helm: ## helm lint + template (Helm 3 and 4) and schema checks of helm/achilles
	bash scripts/validate-helm.sh

bench: ## Load-test the local stack (starts it if needed): bench/results/latest.json, bench/README.md
	bash scripts/bench.sh

tune-postgres: ## Opt-in: write-heavy settings on the local Postgres (restarts it); --reset: make tune-postgres ARGS=--reset
	bash scripts/tune-postgres.sh $(ARGS)

fmt: ## Format the code (cargo fmt --all)
	cargo fmt --all

lint: ## Clippy on everything, warnings are errors
	cargo clippy --workspace --all-targets -- -D warnings

build: ## Build the release binaries (target/release/achilles, achilles-api, achilles-raw-sink, achilles-processor, achilles-agent)
	cargo build --release --bins

clean-stack: ## make down, then delete .stack/ (logs, pid files, installed Tansu)
	bash scripts/stack.sh down
	rm -rf .stack
