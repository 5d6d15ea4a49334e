# Pulse: the two commands of the README, and their parts.
#   make dev   runs the local cloud with every function (PULSE_DEMO=off: no demo traffic)
#   make test  runs the whole suite: fmt, clippy, cfn-lint, OpenAPI lint, unit and integration tests
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
CARGO ?= cargo
export PULSE_DEMO ?= on

.PHONY: dev test setup tracker tracker-test dashboard dashboard-test e2e e2e-tested fmt-check clippy unit-test test-build tests-run e2e-run cfn-lint openapi-lint bench bench-cold-start bench-ingest bench-aggregate bench-write-cost bench-rollup bench-query bench-summary bench-live bench-models build-release token watch

## Install what the commands need (idempotent): the Python venv with moto, cfn-lint, cargo-lambda
## and the OpenTelemetry SDK; the tracker's and the dashboard's npm packages.
setup: tracker/node_modules/.package-lock.json dashboard/node_modules/.package-lock.json
	@infra/scripts/bootstrap.sh

# `npm install`, not `npm ci`: the registry mirror lacks some of rollup's optional platform
# packages (android, older darwin builds), so the lock cannot list them and `npm ci` refuses it;
# `npm install` installs exactly the locked versions and skips the unavailable optional ones.
dashboard/node_modules/.package-lock.json: dashboard/package-lock.json
	cd dashboard && npm install --no-audit --no-fund
	@touch $@

tracker/node_modules/.package-lock.json: tracker/package-lock.json
	cd tracker && npm ci --no-audit --no-fund
	@touch $@

## The tracking script, built to tracker/dist/pulse.js (the local cloud serves it at /pulse.js).
tracker: setup
	cd tracker && npm run --silent build

## The tracking script's tests (behaviour in a fake browser, no cookies, size under 2 KB gzipped).
tracker-test: setup
	cd tracker && npm test

## The dashboard, type-checked and built to dashboard/dist (the local cloud serves it at /).
dashboard: setup
	cd dashboard && npm run --silent build

## The dashboard's unit tests (data shaping, the WebSocket client's reconnection).
dashboard-test: setup
	cd dashboard && npm test --silent

## The dashboard in headless Chromium (Debian's package) against a local cloud of its own.
e2e: setup dashboard
	@infra/scripts/chromium.sh
	$(CARGO) build -p pulse-local
	infra/scripts/e2e.sh

# The same run inside `make test`, on the binary the test build just linked (infra/tests/cli.rs
# makes `cargo test` build pulse-local's binaries): a `cargo build` here would compile every
# crate of the workspace again, because a build without the test crates unifies fewer features.
e2e-tested: setup dashboard test-build
	@infra/scripts/chromium.sh
	infra/scripts/e2e.sh

## Run Pulse locally: AWS emulator, tables, every function, the dashboard on :3000.
dev: setup tracker dashboard
	$(CARGO) build -p pulse-local
	./target/debug/pulse-local

## The whole test suite, as CI runs it.
# Once everything is built, the Rust tests and the browser run side by side: both spend most of
# their time waiting on local clouds (sealed minutes, the rollup job's ticks), not on the CPU.
# Each one's output is printed whole when it ends (`--output-sync`), so the logs do not
# interleave.
test: setup fmt-check clippy cfn-lint openapi-lint tracker-test dashboard-test dashboard test-build
	@infra/scripts/chromium.sh
	@$(MAKE) --no-print-directory -j2 --output-sync=target tests-run e2e-run
	@echo "make test: all checks passed"

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

cfn-lint: setup
	$(VENV)/bin/cfn-lint template.yaml

openapi-lint: setup
	$(VENV)/bin/openapi-spec-validator docs/openapi.yaml

# Unit, handler, adapter and integration tests (the last start the local cloud in-process).
unit-test:
	$(CARGO) test --workspace
# The test build alone: every test binary and, through infra/tests/cli.rs, pulse-local's.
test-build:
	$(CARGO) test --workspace --no-run
# `make test`'s two runs, on what test-build built (no prerequisites: they must not build
# again). A `cargo test` naming fewer packages would unify fewer features and build again.
# Four test threads on two cores: the local-cloud tests mostly wait (for a sealed minute, a
# stream batch, a job tick), and a waiting test should not hold one of two slots.
tests-run:
	RUST_TEST_THREADS=4 $(CARGO) test --workspace
e2e-run:
	infra/scripts/e2e.sh

## Print a dev JWT: make token TENANT=demo ROLE=admin
TENANT ?= demo
ROLE ?= admin
token:
	@$(CARGO) run -q -p pulse-local -- token --tenant $(TENANT) --role $(ROLE)

## Release binaries of every function, as `sam build` makes them (host architecture).
build-release:
	$(CARGO) build --release -p api-health -p api-me -p api-ingest -p authorizer -p api-insights

## Every benchmark; figures go to docs/BENCHMARKS.md.
bench: bench-cold-start bench-ingest bench-aggregate bench-write-cost bench-rollup bench-query bench-summary bench-live bench-models

## Cold start of each function's release binary against a local Lambda Runtime API.
bench-cold-start: build-release
	COLD_START_EXPECT=api-insights:404 $(CARGO) run -p pulse-local --bin cold-start -- api-health api-me api-ingest authorizer api-insights

## Ingest CPU path (parse, validate, enrich, build items) on one core.
bench-ingest:
	$(CARGO) bench -p pulse-store --bench ingest_cpu

## DynamoDB write requests per 1,000 ingested events, counted on the local cloud.
bench-write-cost: setup
	$(CARGO) run -p pulse-local --bin write-cost

## Stream aggregation throughput and DDSketch / HyperLogLog accuracy.
bench-aggregate:
	$(CARGO) bench -p pulse-metrics --bench aggregate

## Forecast and detection in-process (issue #17's inference bars).
bench-models:
	$(CARGO) bench -p pulse-models --bench inference

## The rollup of one day holding 1,000,000 events: time and peak memory.
bench-rollup:
	$(CARGO) bench -p pulse-metrics --bench rollup

## Query compute: 30 days at 1 h over 50 series.
bench-query:
	$(CARGO) bench -p pulse-metrics --bench query

## DynamoDB requests per dashboard summary and key-cards call, counted on the local cloud.
bench-summary: setup
	$(CARGO) run --release -p pulse-local --bin summary-cost

## Live updates: event accepted to frame received by 100 WebSocket clients, and fan-out rate.
bench-live: setup
	$(CARGO) run --release -p pulse-local --bin live-latency

## One function under `cargo lambda watch` (API Gateway v2 events, no WebSocket).
watch: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda watch
