#!/usr/bin/env bash
# Runs one of the benchmark scenarios of docs/performance.md against a fresh release
# server (SQLite in a temporary directory) on this machine, and prints the report.
#   bash scripts/bench.sh B1 [--json] [any vigil bench flag, replacing the scenario's]
# VIGIL_BIN=path/to/vigil uses that binary instead of building the release one.
# Vigil and `vigil bench` run side by side, as in the figures of docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?usage: scripts/bench.sh B1|B2|B3|B4|B5|B5-connect|B6|smoke [extra vigil bench flags]}
shift
case "$scenario" in
  B1) flags=(--subscribers 1000 --patients 1 --alerts 200 --rate 20) ;;
  B2) flags=(--subscribers 10000 --patients 1 --alerts 100 --rate 5) ;;
  B3) flags=(--subscribers 10000 --patients 1000 --alerts 2000 --rate 200) ;;
  B4) flags=(--subscribers 2000 --transport mix --patients 1 --alerts 100 --rate 10) ;;
  B5) flags=(--subscribers 19000 --patients 1 --alerts 0 --hold-secs 5) ;;
  B5-connect) flags=(--subscribers 10000 --patients 1 --alerts 0) ;;
  B6) flags=(--subscribers 0 --alerts 20000 --rate 1000000 --producers 4) ;;
  smoke) flags=(--subscribers 200 --alerts 50 --rate 50 --transport mix) ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
# A flag given after the scenario replaces the scenario's own (`B5 --subscribers 1500`
# is a smaller B5); the others are added.
kept=()
for ((i = 0; i < ${#flags[@]}; i += 2)); do
  given=no
  for arg in "$@"; do
    case "$arg" in "${flags[$i]}" | "${flags[$i]}="*) given=yes ;; esac
  done
  [ "$given" = yes ] || kept+=("${flags[$i]}" "${flags[$((i + 1))]}")
done
flags=("${kept[@]}")
if [ -z "${VIGIL_BIN:-}" ]; then
  cargo build --release --bin vigil
  VIGIL_BIN=${CARGO_TARGET_DIR:-target}/release/vigil
fi
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export VIGIL_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
# Benchmarks measure the server, not its throttles: lift the per-subject write rate
# and the heartbeat stays at its default (30 s).
RUST_LOG=${RUST_LOG:-warn} "$VIGIL_BIN" serve --bind "127.0.0.1:$port" \
  --database-url "sqlite://$work/bench.db" --rate-limit 1000000 >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
python3 - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=1); break
    except Exception:
        time.sleep(0.1)
PY
# The server's CPU time (user + system, in clock ticks) from /proc: what the run cost it.
server_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
ticks_before=$(server_ticks)
# VIGIL_BENCH_WRAP runs the bench under a measuring tool, e.g. '/usr/bin/time -v'.
status=0
${VIGIL_BENCH_WRAP:-} "$VIGIL_BIN" bench --url "http://127.0.0.1:$port" "${flags[@]}" "$@" || status=$?
# On stderr, so that `--json` output stays one JSON document.
python3 -c 'import os, sys; t = (int(sys.argv[2]) - int(sys.argv[1])) / os.sysconf("SC_CLK_TCK"); print(f"server CPU during the run: {t:.2f} s (user + system)", file=sys.stderr)' \
  "$ticks_before" "$(server_ticks)"
if [ "$scenario" = B5 ]; then
  # The bench's streams closed as it exited: what the server still holds of their memory
  # (it gives it back once a wave of streams has closed; docs/architecture.md).
  python3 - "$port" <<'PY'
import sys, time, urllib.request
lowest = None
for _ in range(25):
    time.sleep(0.2)
    text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("vigil_process_resident_memory_bytes "):
            rss = float(line.split()[1])
            lowest = rss if lowest is None else min(lowest, rss)
if lowest is not None:
    print(f"server RSS after the streams closed: {lowest / 1048576:.1f} MiB (lowest within 5 s)")
PY
fi
exit "$status"
