# Starts throwaway PostgreSQL and Redis servers on loopback for the test suite.
# Source it (`. scripts/services.sh`): it exports VIGIL_TEST_DATABASE_URL and
# VIGIL_TEST_REDIS_URL and installs an EXIT trap that stops both servers and deletes
# their data.
# Installs the Debian packages first if they are missing (scripts/packages.sh).
set -euo pipefail
bash "$(dirname "${BASH_SOURCE[0]}")/packages.sh"
VIGIL_SVC_ROOT=$(mktemp -d)
chown postgres:postgres "$VIGIL_SVC_ROOT"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGPORT_TEST=${PGPORT_TEST:-55432}
REDIS_PORT_TEST=${REDIS_PORT_TEST:-56379}
runuser -u postgres -- "$PGBIN/initdb" -D "$VIGIL_SVC_ROOT/pg" -A trust -U postgres -E UTF8 --no-sync >/dev/null
# The default ports sit in Linux's ephemeral range (32768-60999), where any outgoing
# connection may hold one for a while: a server that cannot have its port tries the
# next, and one that never comes up stops the run, naming why (a Redis that had not
# started left every test that needs it waiting, then failing).
pg_up=no
for _ in 1 2 3 4 5; do
  if runuser -u postgres -- "$PGBIN/pg_ctl" -D "$VIGIL_SVC_ROOT/pg" -l "$VIGIL_SVC_ROOT/pg.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT_TEST -k $VIGIL_SVC_ROOT -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" start >/dev/null; then
    pg_up=yes
    break
  fi
  echo "PostgreSQL did not start on port $PGPORT_TEST: $(tail -n 3 "$VIGIL_SVC_ROOT/pg.log" 2>/dev/null)" >&2
  PGPORT_TEST=$((PGPORT_TEST + 1))
done
[ "$pg_up" = yes ] || { echo "no PostgreSQL for the tests (log above)" >&2; exit 1; }
export VIGIL_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT_TEST/postgres"
export VIGIL_PG_BIN="$PGBIN" VIGIL_PG_DATA="$VIGIL_SVC_ROOT/pg" VIGIL_PG_PORT="$PGPORT_TEST"
redis_up=no
for _ in 1 2 3 4 5; do
  # A server that cannot listen exits before it writes its pid file.
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT_TEST" --save "" --appendonly no \
    --dir "$VIGIL_SVC_ROOT" --pidfile "$VIGIL_SVC_ROOT/redis.pid" --logfile "$VIGIL_SVC_ROOT/redis-$REDIS_PORT_TEST.log"
  for _ in $(seq 1 300); do
    if redis-cli -p "$REDIS_PORT_TEST" ping 2>/dev/null | grep -q PONG; then
      redis_up=yes
      break
    fi
    grep -q "Could not create server TCP listening socket" "$VIGIL_SVC_ROOT/redis-$REDIS_PORT_TEST.log" 2>/dev/null && break
    sleep 0.1
  done
  [ "$redis_up" = yes ] && break
  echo "Redis did not start on port $REDIS_PORT_TEST: $(tail -n 3 "$VIGIL_SVC_ROOT/redis-$REDIS_PORT_TEST.log" 2>/dev/null)" >&2
  REDIS_PORT_TEST=$((REDIS_PORT_TEST + 1))
done
[ "$redis_up" = yes ] || { echo "no Redis for the tests (log above)" >&2; exit 1; }
export VIGIL_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT_TEST/"
export VIGIL_REDIS_PORT="$REDIS_PORT_TEST" VIGIL_SVC_ROOT
vigil_services_stop() {
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$VIGIL_SVC_ROOT/pg" -m fast -w stop >/dev/null 2>&1 || true
  [ -f "$VIGIL_SVC_ROOT/redis.pid" ] && kill "$(cat "$VIGIL_SVC_ROOT/redis.pid")" 2>/dev/null || true
  # The test databases live here (one per test, never dropped): gigabytes after a run.
  rm -rf "$VIGIL_SVC_ROOT"
}
trap vigil_services_stop EXIT
