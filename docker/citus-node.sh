#!/bin/sh
# citus-node — the entry point of docker/citus.Dockerfile (compose profile `citus`):
#   citus-node [node]        initialises the data directory on its first start (database
#                            $POSTGRES_DB with the citus extension, password authentication for
#                            $POSTGRES_USER), then runs PostgreSQL in the foreground (exec).
#   citus-node register      once, against the coordinator $CITUS_COORDINATOR (host:port): the
#                            coordinator joins the metadata (citus_set_coordinator_host: it keeps
#                            the reference tables) and each of $CITUS_WORKERS (host:port …) is
#                            added with citus_add_node; waits up to 120 s for every node.
#   citus-node --healthcheck pg_isready on this node.
# Environment: POSTGRES_USER (circa), POSTGRES_PASSWORD (circa), POSTGRES_DB (circa), PGPORT
# (5432). Citus's connections between nodes authenticate from ~/.pgpass (written at start).
set -eu
USER_NAME=${POSTGRES_USER:-circa}
PASSWORD=${POSTGRES_PASSWORD:-circa}
DB=${POSTGRES_DB:-circa}
PGPORT=${PGPORT:-5432}
export PGPORT
PGDATA=${PGDATA:-/var/lib/postgresql/data}
say() { echo "citus-node: $*" >&2; }

init_data() {
  [ -s "$PGDATA/PG_VERSION" ] && return 0
  pw=$(mktemp)
  printf '%s\n' "$PASSWORD" >"$pw"
  initdb -D "$PGDATA" -U "$USER_NAME" --pwfile="$pw" --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pw"
  cat >>"$PGDATA/postgresql.conf" <<CONF
listen_addresses = '*'
shared_preload_libraries = 'citus'
max_prepared_transactions = 200
max_connections = 300
CONF
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # The database and the extension, on a server that listens on its socket only.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w -t 60 start >/dev/null
  echo 'CREATE DATABASE :"db";' | psql -X -q -v ON_ERROR_STOP=1 -v db="$DB" -U "$USER_NAME" -d postgres
  psql -X -q -v ON_ERROR_STOP=1 -U "$USER_NAME" -d "$DB" -c "CREATE EXTENSION citus"
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  say "initialised $PGDATA (database $DB, citus extension)"
}

# Waits until host:port accepts connections (120 s at most).
wait_for() {
  i=0
  until pg_isready -q -h "${1%:*}" -p "${1##*:}" -U "$USER_NAME" -d "$DB"; do
    i=$((i + 1))
    [ "$i" -le 120 ] || { say "$1 is not ready after 120 s"; exit 1; }
    sleep 1
  done
}

register() {
  coord=${CITUS_COORDINATOR:-citus-coordinator:5432}
  export PGPASSWORD="$PASSWORD"
  wait_for "$coord"
  q() { psql -X -q -tA -v ON_ERROR_STOP=1 -h "${coord%:*}" -p "${coord##*:}" -U "$USER_NAME" -d "$DB" "$@"; }
  echo "SELECT citus_set_coordinator_host(:'h', :p);" | q -v h="${coord%:*}" -v p="${coord##*:}" >/dev/null
  for w in ${CITUS_WORKERS:-citus-worker-1:5432 citus-worker-2:5432}; do
    wait_for "$w"
    echo "SELECT citus_add_node(:'h', :p);" | q -v h="${w%:*}" -v p="${w##*:}" >/dev/null
    say "worker $w added"
  done
  say "$(q -c "SELECT count(*) FROM pg_dist_node WHERE groupid > 0") workers in the cluster of $coord"
}

case "${1:-node}" in
  node)
    init_data
    umask 077
    printf '*:*:*:%s:%s\n' "$USER_NAME" "$PASSWORD" >"$HOME/.pgpass"
    exec postgres -D "$PGDATA" -c port="$PGPORT" ;;
  register) register ;;
  --healthcheck) exec pg_isready -q -h 127.0.0.1 -p "$PGPORT" -U "$USER_NAME" -d "$DB" ;;
  *) exec "$@" ;;
esac
