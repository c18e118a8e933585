#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests, on 127.0.0.1, trust auth, data under
# ${PICKET_SERVERS_DIR:-.servers}/pg. Installs Debian's postgresql package if missing.
#
#   scripts/servers/postgres.sh        start (does nothing if already running); prints the admin URL
#   scripts/servers/postgres.sh stop   stop it (the data directory is kept)
#
# Then: PICKET_TEST_POSTGRES_URL=$(scripts/servers/postgres.sh) cargo test store_contract
# Durability settings are off (fsync, synchronous_commit): this cluster is for tests only.
set -euo pipefail

PGPORT=${PICKET_PG_PORT:-${PGPORT:-15432}}
BASE=${PICKET_SERVERS_DIR:-.servers}
mkdir -p "$BASE"
PGDIR=$(cd "$BASE" && pwd)/pg
URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"

pgbin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return; }; done
  return 1
}

# initdb and postgres refuse to run as root: run them as the postgres user then.
as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

running() { [ -n "${PGBIN:-}" ] && as_pg "$PGBIN/pg_ctl -D '$PGDIR/data' status" >/dev/null 2>&1; }

PGBIN=$(pgbin || true)

if [ "${1:-start}" = stop ]; then
  if running; then as_pg "$PGBIN/pg_ctl -D '$PGDIR/data' -m fast -w stop" >/dev/null; fi
  echo "stopped" >&2
  exit 0
fi

if [ -z "$PGBIN" ]; then
  echo "installing postgresql (apt-get)..." >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  PGBIN=$(pgbin)
fi

if running; then echo "$URL"; exit 0; fi

if [ ! -f "$PGDIR/data/PG_VERSION" ]; then
  mkdir -p "$PGDIR"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PGDIR"
  as_pg "$PGBIN/initdb -D '$PGDIR/data' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" > "$PGDIR/initdb.log"
fi
# Parallel contract tests each create a database: allow plenty of connections.
as_pg "$PGBIN/pg_ctl -D '$PGDIR/data' -l '$PGDIR/pg.log' -w start -o \"-c listen_addresses=127.0.0.1 -p $PGPORT -k '$PGDIR' -c max_connections=500 -c fsync=off -c synchronous_commit=off -c full_page_writes=off\"" >&2
echo "$URL"
