#!/usr/bin/env bash
# Installs the Debian packages the test suite needs and a fresh machine lacks (needs
# root, as in CI): PostgreSQL and Redis servers, chattr, and for the TLS pass OpenSSL's
# headers (the `tls` feature builds libpq and the Redis client against them) and the
# `openssl` command the tests make certificates with. Installs nothing already there.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
command -v chattr >/dev/null || need+=(e2fsprogs) # tests/api/writes.rs: unwritable files
command -v openssl >/dev/null || need+=(openssl)
command -v pkg-config >/dev/null || need+=(pkg-config)
installed libssl-dev || need+=(libssl-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
