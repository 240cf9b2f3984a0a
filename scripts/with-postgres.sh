#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL cluster on loopback; exports TEST_POSTGRES_URL.
# Leaves no cluster or temp dir behind, also on Ctrl-C or SIGTERM. Installs PostgreSQL if missing.
set -euo pipefail
PGPORT="${PGPORT:-54329}"; DBNAME="${PGDATABASE_NAME:-mailer_test}"
pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }
PGBIN="$(pgbin)"
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  echo "initdb not found: installing postgresql from apt" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  PGBIN="$(pgbin)"
fi
TMP="$(mktemp -d /tmp/pgci.XXXXXX)"
if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$TMP"; as_pg() { runuser -u postgres -- "$@"; }
else as_pg() { "$@"; }; fi
cleanup() { as_pg "$PGBIN/pg_ctl" -D "$TMP/data" -m fast -w stop >/dev/null 2>&1 || true; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
as_pg "$PGBIN/initdb" -D "$TMP/data" --auth=trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$TMP/data" -l "$TMP/server.log" -w -t 30 start \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $TMP -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >/dev/null
for _ in $(seq 1 30); do "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" && break; sleep 1; done
"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"
"$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres "$DBNAME"
export TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$PGPORT/$DBNAME"
export TEST_POSTGRES_ADMIN_URL="postgresql+psycopg://postgres@127.0.0.1:$PGPORT/postgres"
echo "PostgreSQL ready on 127.0.0.1:$PGPORT ($DBNAME)" >&2
set +e
"$@"
status=$?
exit $status
