#!/usr/bin/env bash
# vendor/actix-http is actix-http from crates.io with vendor/actix-http.patch applied,
# and nothing else. This script proves it (default, run by CI) or rebuilds it (--write,
# after changing the patch or the version):
#   bash scripts/vendor-actix-http.sh [--write]
# To move to a newer actix-http: set VERSION, run with --write, fix the patch if it no
# longer applies, then `cargo update -p actix-http` and re-run docs/performance.md's B5.
# Once upstream starts connections with small buffers, delete vendor/ and the
# [patch.crates-io] section of Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=3.20.0
mode=${1:---check}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$VERSION" "$work" <<'PY'
import io, sys, tarfile, time, urllib.request
version, into = sys.argv[1], sys.argv[2]
url = f"https://static.crates.io/crates/actix-http/actix-http-{version}.crate"
for attempt in range(3):
    try:
        data = urllib.request.urlopen(url, timeout=60).read()
        break
    except OSError as e:
        if attempt == 2:
            sys.exit(f"cannot download {url}: {e}")
        time.sleep(5)
archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
# Python >= 3.12 (and 3.11.4) refuse unsafe paths with the "data" filter.
archive.extractall(into, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
PY
fresh="$work/actix-http-$VERSION"
(cd "$fresh" && git apply -p1 "$OLDPWD/vendor/actix-http.patch")
case "$mode" in
  --write)
    rm -rf vendor/actix-http
    mv "$fresh" vendor/actix-http
    echo "vendor/actix-http rebuilt: actix-http $VERSION + vendor/actix-http.patch"
    ;;
  --check)
    if ! diff -r "$fresh" vendor/actix-http; then
      echo "vendor/actix-http is not actix-http $VERSION + vendor/actix-http.patch" >&2
      exit 1
    fi
    echo "vendor/actix-http is actix-http $VERSION + vendor/actix-http.patch"
    ;;
  *) echo "usage: $0 [--check|--write]" >&2; exit 2 ;;
esac
