#!/usr/bin/env bash
# Private PostgreSQL 15 cluster for circa: start | stop | status | url | psql.
#   CIRCA_DATA_DIR  folder that holds the cluster as pg/ (default ./var)
#   CIRCA_PG_PORT   its port (default 54329); its socket lives inside the cluster folder.
# As root, initdb and pg_ctl run as the `postgres` user; when that user cannot enter the
# checkout, the cluster lives under /var/tmp and $CIRCA_DATA_DIR/pg is a link to it.
set -euo pipefail
cmd=${1:-status}
DATA=${CIRCA_DATA_DIR:-./var}
mkdir -p "$DATA"
DATA=$(cd "$DATA" && pwd)
PORT=${CIRCA_PG_PORT:-54329}
PGBIN=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v pg_ctl)")
DBUSER=circa
DBNAME=circa

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Where the cluster really lives (follows the link).
cluster_dir() {
  if [ -L "$DATA/pg" ] || [ -d "$DATA/pg" ]; then (cd "$DATA/pg" && pwd -P); return; fi
  local dir="$DATA/pg"
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$DATA" 2>/dev/null; then
    dir="/var/tmp/circa-pg-$(printf '%s' "$DATA" | sha1sum | cut -c1-12)"
  fi
  # A socket path must stay under 108 bytes.
  if [ ${#dir} -gt 80 ]; then dir="/var/tmp/circa-pg-$(printf '%s' "$DATA" | sha1sum | cut -c1-12)"; fi
  mkdir -p "$dir"
  [ "$dir" != "$DATA/pg" ] && ln -sfn "$dir" "$DATA/pg"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
  (cd "$dir" && pwd -P)
}

url() { local d; d=$(cluster_dir); echo "postgresql:///$DBNAME?host=$d&port=$PORT&user=$DBUSER"; }

running() { local d; d=$(cluster_dir); as_pg "$PGBIN/pg_ctl" -D "$d/data" status >/dev/null 2>&1; }

start() {
  local d; d=$(cluster_dir)
  if [ ! -f "$d/data/PG_VERSION" ]; then
    as_pg "$PGBIN/initdb" -D "$d/data" -U "$DBUSER" --auth=trust -E UTF8 --locale=C --no-sync >"$d/initdb.log" 2>&1 \
      || { cat "$d/initdb.log" >&2; exit 1; }
    cat >>"$d/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$d'
shared_buffers = 256MB
max_connections = 200
max_wal_size = 4GB
checkpoint_timeout = 15min
wal_buffers = 16MB
# A new database's tables grow from nothing within seconds (make run's demo, the tests, the
# benchmarks); until autovacuum first analyses them the planner plans for empty tables. The
# default 60 s between autovacuum rounds left the demo's first minute on such plans
# (docs/PERFORMANCE.md, Metrics, "142").
autovacuum_naptime = 5s
CONF
  fi
  if running; then echo "pg: already running on port $PORT ($d)"; return; fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "pg: port $PORT is taken; set CIRCA_PG_PORT" >&2; exit 1
  fi
  as_pg "$PGBIN/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 60 -o "-p $PORT" start >/dev/null \
    || { tail -20 "$d/server.log" >&2; exit 1; }
  "$PGBIN/psql" -X -q -h "$d" -p "$PORT" -U "$DBUSER" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='$DBNAME'" | grep -q 1 \
    || "$PGBIN/createdb" -h "$d" -p "$PORT" -U "$DBUSER" "$DBNAME"
  echo "pg: running on port $PORT ($d)"
}

stop() {
  local d; d=$(cluster_dir)
  if running; then as_pg "$PGBIN/pg_ctl" -D "$d/data" -m fast -w stop >/dev/null; echo "pg: stopped"; fi
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if running; then echo "running"; else echo "stopped"; exit 3; fi ;;
  url) url ;;
  psql) shift; d=$(cluster_dir); exec "$PGBIN/psql" -X -h "$d" -p "$PORT" -U "$DBUSER" "$DBNAME" "$@" ;;
  destroy) stop; d=$(cluster_dir); rm -rf "$d" "$DATA/pg" ;;
  *) echo "usage: pg.sh start|stop|restart|status|url|psql|destroy" >&2; exit 2 ;;
esac
