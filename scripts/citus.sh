#!/usr/bin/env bash
# Private three-node Citus cluster for circa (coordinator + two workers): start | stop | status | url | psql | destroy.
#   CIRCA_CITUS_DIR   folder holding the nodes as n1/ n2/ n3/ (default ./var/citus)
#   CIRCA_CITUS_PORT  coordinator port (default 54371); the workers take the next two (54372, 54373).
# Every node listens on 127.0.0.1 only (the workers are reached over TCP, trust auth on loopback)
# and on a socket inside its folder. As root, initdb and pg_ctl run as the `postgres` user; when
# that user cannot enter the checkout, the nodes live under /var/tmp and the folder is a link.
set -euo pipefail
cmd=${1:-status}
DATA=${CIRCA_CITUS_DIR:-./var/citus}
mkdir -p "$(dirname "$DATA")"
DATA=$(cd "$(dirname "$DATA")" && pwd)/$(basename "$DATA")
PORT0=${CIRCA_CITUS_PORT:-54371}
PORTS=("$PORT0" "$((PORT0 + 1))" "$((PORT0 + 2))")
PGBIN=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v pg_ctl)")
DBUSER=circa
DBNAME=circa

# From / as root: the postgres user may not be able to enter the checkout (every path is absolute).
as_pg() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
say() { printf 'citus: %s\n' "$*" >&2; }

# Where the nodes really live (follows the link), created on first use.
base_dir() {
  if [ -L "$DATA" ] || [ -d "$DATA" ]; then (cd "$DATA" && pwd -P); return; fi
  local dir=$DATA parent; parent=$(dirname "$DATA")
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$parent" 2>/dev/null; then
    dir="/var/tmp/circa-citus-$(printf '%s' "$DATA" | sha1sum | cut -c1-12)"
  fi
  # A socket path must stay under 108 bytes.
  if [ ${#dir} -gt 70 ]; then dir="/var/tmp/circa-citus-$(printf '%s' "$DATA" | sha1sum | cut -c1-12)"; fi
  mkdir -p "$dir"
  [ "$dir" != "$DATA" ] && ln -sfn "$dir" "$DATA"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
  (cd "$dir" && pwd -P)
}

node_dir() { echo "$(base_dir)/n$1"; }
psql_node() { local i=$1 db=$2; shift 2; "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${PORTS[$i]}" -U "$DBUSER" -d "$db" "$@"; }
running() { as_pg "$PGBIN/pg_ctl" -D "$(node_dir "$1")/data" status >/dev/null 2>&1; }

url() { echo "postgresql://$DBUSER@127.0.0.1:$PORT0/$DBNAME"; }

init_node() {
  local i=$1 d; d=$(node_dir "$i")
  mkdir -p "$d"; [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$d"
  [ -f "$d/data/PG_VERSION" ] && return
  as_pg "$PGBIN/initdb" -D "$d/data" -U "$DBUSER" --auth=trust -E UTF8 --locale=C --no-sync >"$d/initdb.log" 2>&1 \
    || { cat "$d/initdb.log" >&2; exit 1; }
  cat >>"$d/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = ${PORTS[$i]}
unix_socket_directories = '$d'
shared_preload_libraries = 'citus'
citus.node_conninfo = 'sslmode=disable'
max_prepared_transactions = 200
shared_buffers = 128MB
max_connections = 300
max_wal_size = 4GB
checkpoint_timeout = 15min
wal_buffers = 16MB
CONF
}

start() {
  [ -f "$(pg_config --pkglibdir 2>/dev/null)/citus.so" ] || [ -f "$PGBIN/../lib/citus.so" ] \
    || { say "citus.so is not installed (../shared/tools/citus-install.sh builds it)"; exit 1; }
  local i
  for i in 0 1 2; do
    init_node "$i"
    if running "$i"; then continue; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/${PORTS[$i]}") 2>/dev/null; then
      say "port ${PORTS[$i]} is taken; set CIRCA_CITUS_PORT"; exit 1
    fi
    as_pg "$PGBIN/pg_ctl" -D "$(node_dir "$i")/data" -l "$(node_dir "$i")/server.log" -w -t 60 start >/dev/null \
      || { tail -20 "$(node_dir "$i")/server.log" >&2; exit 1; }
  done
  # The database and the extension on every node, then the workers joined to the coordinator.
  for i in 0 1 2; do
    psql_node "$i" postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DBNAME'" | grep -q 1 \
      || psql_node "$i" postgres -c "CREATE DATABASE $DBNAME"
    psql_node "$i" "$DBNAME" -c "CREATE EXTENSION IF NOT EXISTS citus"
  done
  # The coordinator is in the metadata without shards: it holds a copy of every reference
  # table (tenant, api_key, the code lists), so an ingest transaction reads them locally and
  # talks to the tenant's worker only.
  psql_node 0 "$DBNAME" -tAc "SELECT 1 FROM pg_dist_node WHERE groupid = 0" | grep -q 1 \
    || psql_node 0 "$DBNAME" -c "SELECT citus_set_coordinator_host('127.0.0.1', ${PORTS[0]})" >/dev/null
  for i in 1 2; do
    psql_node 0 "$DBNAME" -tAc "SELECT 1 FROM pg_dist_node WHERE nodeport = ${PORTS[$i]}" | grep -q 1 \
      || psql_node 0 "$DBNAME" -c "SELECT citus_add_node('127.0.0.1', ${PORTS[$i]})" >/dev/null
  done
  say "coordinator 127.0.0.1:${PORTS[0]}, workers ${PORTS[1]} ${PORTS[2]} ($(base_dir))"
}

stop() {
  local i
  for i in 2 1 0; do
    if [ -d "$(node_dir "$i")/data" ] && running "$i"; then
      as_pg "$PGBIN/pg_ctl" -D "$(node_dir "$i")/data" -m fast -w stop >/dev/null
    fi
  done
  say "stopped"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) n=0; for i in 0 1 2; do running "$i" && n=$((n + 1)); done
          echo "$n of 3 nodes running"; [ "$n" -eq 3 ] || exit 3 ;;
  url) url ;;
  psql) shift; exec "$PGBIN/psql" -X -h 127.0.0.1 -p "$PORT0" -U "$DBUSER" "$DBNAME" "$@" ;;
  destroy) stop; d=$(base_dir); rm -rf "$d"; [ -L "$DATA" ] && rm -f "$DATA"; true ;;
  *) echo "usage: citus.sh start|stop|restart|status|url|psql|destroy" >&2; exit 2 ;;
esac
