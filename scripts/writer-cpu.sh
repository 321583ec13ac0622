#!/usr/bin/env bash
# The CPU one alert costs the SQLite writer thread and the whole server, at B3's pace
# (200/s, one producer, no subscribers), read from /proc per thread: the store path's
# cost apart from the fan-out's, steadier from run to run than its latency.
#   bash scripts/writer-cpu.sh [alerts]     (default 2000)
# VIGIL_BIN=path/to/vigil uses that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
alerts=${1:-2000}
if [ -z "${VIGIL_BIN:-}" ]; then
  cargo build --release --bin vigil
  VIGIL_BIN=${CARGO_TARGET_DIR:-target}/release/vigil
fi
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export VIGIL_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
RUST_LOG=warn "$VIGIL_BIN" serve --bind "127.0.0.1:$port" \
  --database-url "sqlite://$work/bench.db" --rate-limit 1000000 >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 300); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break
  sleep 0.1
done
writer=
for task in /proc/$server/task/*; do
  [ "$(cat "$task/comm")" = vigil-sqlite-wr ] && writer=${task##*/}
done
[ -n "$writer" ] || { echo "no SQLite writer thread in the server" >&2; exit 1; }
# User + system time in clock ticks (usually 100 a second).
ticks() { awk '{print $14 + $15}' "$1"; }
writer_before=$(ticks "/proc/$server/task/$writer/stat")
server_before=$(ticks "/proc/$server/stat")
"$VIGIL_BIN" bench --url "http://127.0.0.1:$port" --subscribers 0 --alerts "$alerts" \
  --rate 200 --producers 1 | grep '^alerts'
hz=$(getconf CLK_TCK)
per_alert() { echo $(( ($2 - $1) * 1000000 / hz / alerts )); }
echo "CPU per alert: writer thread $(per_alert "$writer_before" "$(ticks "/proc/$server/task/$writer/stat")") µs, whole server $(per_alert "$server_before" "$(ticks "/proc/$server/stat")") µs"
