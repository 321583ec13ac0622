#!/usr/bin/env bash
# End-to-end tests in a real browser: the SSE console (/), the legacy WebSocket dashboard
# (/legacy) and the `vigil watch` terminal client, against a real `vigil serve`.
#
# Uses Debian's Chromium (installed here with apt-get if missing) driven by playwright-core
# from the npm registry; never downloads a browser of its own.
#
#   bash scripts/browser-test.sh              # cargo build (debug), then the tests
#   VIGIL_BIN=/path/to/vigil bash scripts/browser-test.sh   # test that binary, build nothing
#
# Screenshots: target/browser-screenshots/; server logs: target/browser-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@"
}

CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM_PATH" ]; then
  echo "== installing Debian's chromium"
  apt_install chromium
fi
export CHROMIUM_PATH

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "== installing node and npm"
  apt_install nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "browser-test: node $(node --version) is too old; playwright-core needs node >= 20" >&2
  exit 1
fi

if [ -z "${VIGIL_BIN:-}" ]; then
  echo "== cargo build"
  cargo build --bin vigil
  VIGIL_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/vigil"
fi
VIGIL_BIN=$(cd "$(dirname "$VIGIL_BIN")" && pwd)/$(basename "$VIGIL_BIN")
[ -x "$VIGIL_BIN" ] || { echo "browser-test: no executable at $VIGIL_BIN" >&2; exit 1; }
export VIGIL_BIN

cd tests/browser
echo "== npm ci"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
echo "== browser tests ($VIGIL_BIN, $CHROMIUM_PATH)"
npm test
