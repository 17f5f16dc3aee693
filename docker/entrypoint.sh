#!/bin/sh
# circa container entry point.
#   (no arguments) or `circad …`: wait for PostgreSQL (bounded), apply the schema, create the
#       demo tenant when CIRCA_DEMO=1, then exec circad, so that it is PID 1 and gets SIGTERM.
#   --healthcheck: liveness probe used by HEALTHCHECK — GET /healthz on CIRCA_LISTEN.
#   anything else: run it as given, e.g. `circa verify --tenant demo`.
# Settings: DATABASE_URL (required), CIRCA_DB_WAIT seconds to wait for PostgreSQL (default 60),
# CIRCA_DEMO=1 to create tenant `demo` (its admin key goes to $CIRCA_DATA_DIR/admin.key),
# and circad's own variables (README.md).
set -eu

log() { printf 'entrypoint: %s\n' "$*" >&2; }

healthcheck() {
  listen=${CIRCA_LISTEN:-127.0.0.1:8080}
  host=${listen%:*} port=${listen##*:}
  case "$host" in
    ''|0.0.0.0|'*') host=127.0.0.1 ;;
    '[::]'|'::') host='[::1]' ;;
  esac
  exec curl -fsS -o /dev/null --max-time 3 "http://$host:$port/healthz"
}

case "${1:-circad}" in
  --healthcheck) healthcheck ;;
  circad) ;;
  *) exec "$@" ;;
esac
[ $# -gt 0 ] && shift   # what follows `circad` goes to circad

if [ -z "${DATABASE_URL:-}" ]; then
  log "DATABASE_URL is not set; point it at PostgreSQL 15, e.g. postgresql://circa:circa@postgres:5432/circa"
  exit 2
fi
data=${CIRCA_DATA_DIR:-/var/lib/circa}
mkdir -p "$data"

# Wait for the database while `circa migrate` cannot connect; any other failure is final.
wait_s=${CIRCA_DB_WAIT:-60}
case "$wait_s" in ''|*[!0-9]*) log "CIRCA_DB_WAIT=$wait_s is not a number of seconds"; exit 2 ;; esac
start=$(date +%s)
errf=$(mktemp)
trap 'rm -f "$errf"' EXIT
while ! circa migrate 2>"$errf"; do
  if ! grep -q 'cannot connect to PostgreSQL' "$errf"; then
    cat "$errf" >&2
    log "schema migration failed"
    exit 1
  fi
  if [ $(( $(date +%s) - start )) -ge "$wait_s" ]; then
    cat "$errf" >&2
    log "PostgreSQL not reachable after ${wait_s}s (CIRCA_DB_WAIT)"
    exit 1
  fi
  sleep 1
done
log "schema is up to date"

if [ "${CIRCA_DEMO:-0}" = 1 ]; then
  keyfile="$data/admin.key"
  if ! tenants=$(circa tenants list 2>"$errf"); then
    cat "$errf" >&2; log "cannot list tenants"; exit 1
  fi
  if ! printf '%s\n' "$tenants" | cut -f1 | grep -qx demo \
     && (umask 077; circa tenants create demo --name "Demo industrial park" >"$keyfile.tmp"); then
    mv "$keyfile.tmp" "$keyfile"
    log "created tenant demo; its admin key is in $keyfile"
  elif [ ! -s "$keyfile" ]; then
    # (also when another container created it a moment ago: `tenants create` then fails)
    # The tenant outlived this data directory: give it a new admin key here.
    (umask 077; circa keys create --tenant demo --role admin >"$keyfile.tmp")
    mv "$keyfile.tmp" "$keyfile"
    log "tenant demo exists; a new admin key is in $keyfile"
  else
    log "tenant demo exists; its admin key is in $keyfile"
  fi
fi

rm -f "$errf"
trap - EXIT
exec circad "$@"
