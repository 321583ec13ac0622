#!/usr/bin/env bash
# CI's benchmark smoke run: a small `vigil bench` scenario against a real server. It
# checks only that nothing is lost or duplicated (bench exits non-zero otherwise) —
# never a timing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIGIL_BIN:-}" ]; then
  cargo build --bin vigil
  VIGIL_BIN=${CARGO_TARGET_DIR:-target}/debug/vigil
fi
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export VIGIL_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
"$VIGIL_BIN" serve --bind "127.0.0.1:$port" --database-url "sqlite://$work/bench.db" --rate-limit 100000 \
  >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
python3 - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=1); break
    except Exception:
        time.sleep(0.1)
PY
"$VIGIL_BIN" bench --url "http://127.0.0.1:$port" --subscribers 200 --alerts 50 --rate 50 --transport mix
echo "bench smoke: 0 lost, 0 duplicated"
