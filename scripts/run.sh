#!/usr/bin/env bash
# `make run`: private PostgreSQL under $CIRCA_DATA_DIR (unless DATABASE_URL is set), schema,
# demo tenant and data, then circad in the foreground until Ctrl-C / SIGTERM, which stop
# circad and the cluster this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
export CIRCA_DATA_DIR=${CIRCA_DATA_DIR:-$PWD/var}
export CIRCA_LISTEN=${CIRCA_LISTEN:-127.0.0.1:8080}
export CIRCA_SCHEMA_DIR=${CIRCA_SCHEMA_DIR:-$PWD/schema}
mkdir -p "$CIRCA_DATA_DIR"
own_pg=0 circad_pid=""

cleanup() {
  trap - INT TERM EXIT
  if [ -n "$circad_pid" ] && kill -0 "$circad_pid" 2>/dev/null; then
    kill -TERM "$circad_pid"; wait "$circad_pid" 2>/dev/null || true
  fi
  [ "$own_pg" = 1 ] && scripts/pg.sh stop
  exit 0
}
trap cleanup INT TERM EXIT
# `make run` killed with SIGTERM dies without passing it on: follow make out, cleaning up.
parent=$PPID
( while kill -0 "$parent" 2>/dev/null; do sleep 1; done; kill -TERM $$ 2>/dev/null ) &

if [ -z "${DATABASE_URL:-}" ]; then
  scripts/pg.sh start
  own_pg=1
fi
bin/circa migrate

keyfile="$CIRCA_DATA_DIR/admin.key"
if key=$(bin/circa tenants create demo --name "Demo industrial park" 2>/dev/null); then
  (umask 077; printf '%s\n' "$key" >"$keyfile")
  echo "run: created tenant demo; its admin key is in $keyfile"
elif [ ! -s "$keyfile" ]; then
  (umask 077; bin/circa keys create --tenant demo --role admin >"$keyfile")
  echo "run: tenant demo existed; a new admin key is in $keyfile"
fi
KEY=$(cat "$keyfile")

bin/circad &
circad_pid=$!
url="http://$CIRCA_LISTEN"
for _ in $(seq 1 100); do
  curl -fsS "$url/readyz" >/dev/null 2>&1 && break
  kill -0 "$circad_pid" 2>/dev/null || { echo "run: circad exited" >&2; exit 1; }
  sleep 0.1
done
scripts/demo.sh "$url" "$KEY"

cat <<MSG

circad is running on $url (stop it with Ctrl-C).
Post an event:

  curl -sS -X POST $url/v1/events \\
    -H "Authorization: Bearer \$(cat $keyfile)" -H 'Content-Type: application/json' \\
    -d '{"type":"waste_generated","time":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","site":"ACME-1",
         "material":"PET","ewc":"15 01 02","quantity":{"value":1.2,"unit":"t"}}'

Read events back:  curl -sS -H "Authorization: Bearer \$(cat $keyfile)" '$url/v1/events?limit=5'
Verify the ledger: bin/circa verify --tenant demo
MSG
wait "$circad_pid" || true
