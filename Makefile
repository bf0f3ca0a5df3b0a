# Achilles: entry points for the local stack, tests and checks. `make` lists them.
# The work is done by scripts/*.sh; docs/local-stack.md describes them.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

# Extra arguments for the test runner, e.g. make test ARGS="-E 'test(ingest)'"
ARGS ?=

.PHONY: help up down status logs demo test bench fmt lint build clean-stack

help: ## List the targets
	@echo "Achilles make targets:"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

up: ## Start Postgres, Tansu (Kafka), achilles-api and achilles-raw-sink; wait for /readyz
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

bench: ## Run the benchmarks (cargo bench --workspace)
	cargo bench --workspace

fmt: ## Format the code (cargo fmt --all)
	cargo fmt --all

lint: ## Clippy on everything, warnings are errors
	cargo clippy --workspace --all-targets -- -D warnings

build: ## Build the release binaries (target/release/achilles, achilles-api, achilles-raw-sink)
	cargo build --release --bins

clean-stack: ## make down, then delete .stack/ (logs, pid files, installed Tansu)
	bash scripts/stack.sh down
	rm -rf .stack
