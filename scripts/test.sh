#!/usr/bin/env bash
# The README's test command: the whole suite on SQLite, then again on PostgreSQL,
# with real PostgreSQL and Redis servers started (and installed if missing) here.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/services.sh
echo "== unit tests and API tests on SQLite"
VIGIL_TEST_DATABASE_URL= cargo test --all-targets
echo "== API tests on PostgreSQL"
cargo test --test api
echo "== TLS to PostgreSQL and Redis (a build with --features tls)"
cargo test --features tls --lib --test api -- config:: tls::
echo "== benchmark smoke run (loss and duplicates only, no timings)"
bash scripts/bench-smoke.sh
echo "== browser tests (console, legacy dashboard) and vigil watch"
bash scripts/browser-test.sh
