#!/usr/bin/env bash
# CI's benchmark smoke run: a small `vigil bench` scenario (200 subscribers, half
# WebSocket, 50 alerts) against a real server. It checks only that nothing is lost or
# duplicated (bench exits non-zero otherwise) — never a timing. Debug build: CI has
# built it already for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIGIL_BIN:-}" ]; then
  cargo build --bin vigil
  VIGIL_BIN=${CARGO_TARGET_DIR:-target}/debug/vigil
fi
VIGIL_BIN=$VIGIL_BIN bash scripts/bench.sh smoke
echo "bench smoke: 0 lost, 0 duplicated"
