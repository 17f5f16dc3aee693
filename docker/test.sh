#!/usr/bin/env bash
# docker-test: builds the circa image and runs it against a private PostgreSQL.
#   1. docker/check_compose.py checks docker/compose.yaml (services, wiring, healthchecks);
#   2. the image is built (podman build --format docker, or docker build) and must carry a
#      HEALTHCHECK;
#   3. a private PostgreSQL 15 (scripts/pg.sh, var/docker-test, port 54369) listens on
#      127.0.0.1; the container runs on the host network with CIRCA_LISTEN=127.0.0.1:18181 and
#      CIRCA_DEMO=1; the test waits for /readyz, reads the demo admin key from the container,
#      creates a party, a site and a material, posts an event and reads it back;
#   4. circad is PID 1 in the container and not root; the healthcheck passes, also while
#      PostgreSQL is down (liveness only) and circad reconnects when it is back;
#   5. SIGTERM (stop -t 10) ends the container within 10 s with exit code 0.
# Without a working podman or docker it runs ../shared/tools/podman-setup.sh when that exists;
# if there is still no engine it prints "docker-test: SKIP: <why>" and exits 0.
# The container and the cluster are removed/stopped on every exit path.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
T0=$(date +%s)

DATA=$ROOT/var/docker-test
PG_PORT=54369
LISTEN=127.0.0.1:18181
URL=http://$LISTEN
IMAGE=localhost/circa:docker-test
NAME=circa-docker-test-$$
mkdir -p "$DATA"

say() { printf 'docker-test: %s\n' "$*"; }
skip() { say "SKIP: $*"; exit 0; }

ENGINE="" ctr_started=0 pg_started=0 NAME_MAIN=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$ctr_started" = 1 ]; then
    "$ENGINE" logs "$NAME" >"$DATA/container.log" 2>&1 || true
    # One at a time: podman stops at the first name that does not exist.
    for c in "${NAME_MAIN:-$NAME}" "${NAME_MAIN:-$NAME}-2" "${NAME_MAIN:-$NAME}-nodb"; do
      "$ENGINE" rm -f "$c" >/dev/null 2>&1 || true
    done
  fi
  if [ "$pg_started" = 1 ]; then
    CIRCA_DATA_DIR=$DATA CIRCA_PG_PORT=$PG_PORT scripts/pg.sh stop >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  say "FAIL: $*"
  if [ "$ctr_started" = 1 ]; then
    echo "---- last lines of the container's log:"
    "$ENGINE" logs --tail 30 "$NAME" 2>&1 | sed 's/^/  /'
  fi
  exit 1
}

# ---- container engine -----------------------------------------------------------------------
engine_works() {
  if command -v podman >/dev/null 2>&1 && podman info >/dev/null 2>&1; then ENGINE=podman
  elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then ENGINE=docker
  else return 1; fi
}
if ! engine_works; then
  top=$(git rev-parse --show-toplevel 2>/dev/null || echo "$ROOT")
  setup=$top/../shared/tools/podman-setup.sh
  [ -f "$setup" ] || skip "neither 'podman info' nor 'docker info' works and $setup does not exist"
  say "no working podman or docker; running $setup"
  if ! bash "$setup" >"$DATA/podman-setup.log" 2>&1; then
    skip "no working podman or docker, and podman-setup.sh failed: $(tail -1 "$DATA/podman-setup.log")"
  fi
  sed 's/^/  /' "$DATA/podman-setup.log"
  engine_works || skip "podman-setup.sh ran but 'podman info' still fails"
fi
say "engine: $ENGINE ($("$ENGINE" --version 2>/dev/null | head -1))"
if [ "$ENGINE" = podman ] && ! podman image exists docker.io/library/debian:bookworm-slim \
   && ! podman image exists debian:bookworm-slim; then
  say "note: debian:bookworm-slim is not present locally; the build will try a registry"
fi

# ---- compose file ---------------------------------------------------------------------------
if ! python3 -c 'import yaml' 2>/dev/null; then
  say "installing python3-yaml (apt-get)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-yaml \
    || { $SUDO apt-get update -q && $SUDO env DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -q --no-install-recommends python3-yaml; }; } >"$DATA/apt.log" 2>&1 \
    || fail "cannot install python3-yaml: $(tail -1 "$DATA/apt.log")"
fi
python3 docker/check_compose.py docker/compose.yaml || fail "docker/compose.yaml: see above"

# ---- image ----------------------------------------------------------------------------------
t=$(date +%s)
fmt=(); [ "$ENGINE" = podman ] && fmt=(--format docker)
old_id=$("$ENGINE" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
if ! "$ENGINE" build "${fmt[@]}" -f docker/Dockerfile -t "$IMAGE" . >"$DATA/build.log" 2>&1; then
  tail -30 "$DATA/build.log" | sed 's/^/  /'
  fail "image build failed (log: $DATA/build.log)"
fi
# Do not pile up images run after run: drop this test's previous image and the untagged
# build-stage images (label org.circa.stage=build); the cached package layers stay.
new_id=$("$ENGINE" image inspect --format '{{.Id}}' "$IMAGE")
[ -n "$old_id" ] && [ "$old_id" != "$new_id" ] && "$ENGINE" rmi "$old_id" >/dev/null 2>&1
"$ENGINE" image prune -f --filter label=org.circa.stage=build >/dev/null 2>&1
say "image built in $(( $(date +%s) - t ))s"
if [ "$ENGINE" = podman ]; then hc=$(podman image inspect --format '{{json .HealthCheck}}' "$IMAGE")
else hc=$(docker image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE"); fi
case "$hc" in
  *circa-entrypoint*--healthcheck*) say "HEALTHCHECK in the image config: $hc" ;;
  *) fail "no HEALTHCHECK in the image config (got: $hc); podman needs --format docker" ;;
esac
user=$("$ENGINE" image inspect --format '{{.Config.User}}' "$IMAGE")
case "$user" in ''|0|0:*|root|root:*) fail "the image runs as root (User='$user')" ;; esac

# ---- PostgreSQL on 127.0.0.1:54369 ----------------------------------------------------------
export CIRCA_DATA_DIR=$DATA CIRCA_PG_PORT=$PG_PORT
command -v pg_ctl >/dev/null 2>&1 || [ -x /usr/lib/postgresql/15/bin/pg_ctl ] \
  || fail "PostgreSQL 15 is not installed (make deps)"
scripts/pg.sh destroy >/dev/null 2>&1
pg_started=1
scripts/pg.sh start >"$DATA/pg.log" 2>&1 || { cat "$DATA/pg.log"; fail "cannot start PostgreSQL"; }
# scripts/pg.sh listens on a socket only; the container reaches the cluster over TCP.
scripts/pg.sh psql -qc "ALTER SYSTEM SET listen_addresses = '127.0.0.1'" >>"$DATA/pg.log" 2>&1 \
  && scripts/pg.sh restart >>"$DATA/pg.log" 2>&1 || { cat "$DATA/pg.log"; fail "cannot restart PostgreSQL on TCP"; }
DBURL="postgresql://circa@127.0.0.1:$PG_PORT/circa"

# ---- container ------------------------------------------------------------------------------
(exec 3<>"/dev/tcp/127.0.0.1/18181") 2>/dev/null && fail "127.0.0.1:18181 is already in use"
ctr_started=1
"$ENGINE" run -d --name "$NAME" --network host \
  -e DATABASE_URL="$DBURL" -e CIRCA_LISTEN="$LISTEN" -e CIRCA_DEMO=1 -e CIRCA_LOG_FORMAT=text \
  "$IMAGE" >"$DATA/run.log" 2>&1 || { cat "$DATA/run.log"; fail "$ENGINE run failed"; }

running() { [ "$("$ENGINE" inspect --format '{{.State.Running}}' "$NAME" 2>/dev/null)" = true ]; }
# Waits up to $2 seconds for GET $1 to answer 200.
wait_200() {
  for _ in $(seq 1 $(( $2 * 5 ))); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL$1")" = 200 ] && return 0
    running || return 1
    sleep 0.2
  done
  return 1
}
t=$(date +%s)
wait_200 /readyz 60 || fail "circad did not become ready on $URL/readyz within 60 s"
say "ready in $(( $(date +%s) - t ))s"

# ---- circad is PID 1 and not root; the image's healthcheck passes ---------------------------
comm=$("$ENGINE" exec "$NAME" cat /proc/1/comm) || fail "$ENGINE exec failed"
[ "$comm" = circad ] || fail "PID 1 in the container is '$comm', not circad (signals would not reach it)"
uid=$("$ENGINE" exec "$NAME" awk '/^Uid:/ {print $2}' /proc/1/status)
[ -n "$uid" ] && [ "$uid" != 0 ] || fail "circad runs as uid '$uid'"
say "circad is PID 1, uid $uid"
"$ENGINE" exec "$NAME" /usr/local/bin/circa-entrypoint --healthcheck \
  || fail "the HEALTHCHECK command fails while circad is up"
if [ "$ENGINE" = podman ]; then
  podman healthcheck run "$NAME" >/dev/null || fail "podman healthcheck run: unhealthy"
fi

# ---- demo key, master data, one event -------------------------------------------------------
KEY=$("$ENGINE" exec "$NAME" cat /var/lib/circa/admin.key) || fail "no admin key in the container"
[[ $KEY =~ ^circa_[^_]+_.+$ ]] || fail "admin key has an unexpected form: '$KEY'"

# request METHOD PATH [BODY] -> sets CODE and BODY
request() {
  local out=$DATA/response.json args=(-s -o "$DATA/response.json" -w '%{http_code}' --max-time 10
        -X "$1" -H "Authorization: Bearer $KEY")
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  CODE=$(curl "${args[@]}" "$URL$2") || CODE=000
  BODY=$(cat "$out" 2>/dev/null)
}
expect() { # expect CODE WHAT
  [ "$CODE" = "$1" ] || fail "$2 answered $CODE, expected $1: $BODY"
}
request POST /v1/parties '{"code":"DT","name":"Docker Test Party","roles":["generator"],"country":"DE"}'
[ "$CODE" = 404 ] && fail "/v1/parties is not served by this circad (master-data API missing)"
expect 201 "POST /v1/parties"
request POST /v1/sites '{"code":"DT-1","party":"DT","name":"Docker test site","kind":"factory","country":"DE"}'
expect 201 "POST /v1/sites"
request POST /v1/materials '{"code":"PET","name":"Polyethylene terephthalate","category":"plastic","hazardous":false,"renewable":false,"density_kg_m3":1380}'
expect 201 "POST /v1/materials"

when=$(date -u -d '-1 minute' +%Y-%m-%dT%H:%M:%SZ)
EVENT='{"id":"docker-test-1","type":"waste_generated","time":"'$when'","site":"DT-1","material":"PET","ewc":"150102","quantity":{"value":1.2,"unit":"t"},"ext":{"bin":"B-17"}}'
request POST /v1/events "$EVENT"
expect 201 "POST /v1/events"
POSTED=$BODY
request GET /v1/events/docker-test-1
expect 200 "GET /v1/events/docker-test-1"
python3 - "$EVENT" "$POSTED" "$BODY" <<'PY' || fail "the event read back differs from the one posted"
import json, sys
sent, posted, got = (json.loads(a) for a in sys.argv[1:4])
errs = []
if posted.get("accepted") != 1 or posted.get("ids") != [sent["id"]]:
    errs.append(f"POST answer {posted}")
for k, v in sent.items():
    if got.get(k) != v:
        errs.append(f"{k}: sent {v!r}, got {got.get(k)!r}")
if abs(float(got.get("quantity_kg", -1)) - 1200.0) > 1e-6:
    errs.append(f"quantity_kg {got.get('quantity_kg')!r}, expected 1200")
if got.get("seq") != 1:
    errs.append(f"seq {got.get('seq')!r}, expected 1")
if got.get("block") != posted.get("block"):
    errs.append(f"block {got.get('block')!r} is not the POST's {posted.get('block')!r}")
for e in errs:
    print("  " + e)
sys.exit(1 if errs else 0)
PY
say "event posted and read back identical (seq 1, 1200 kg)"

# ---- liveness does not depend on PostgreSQL -------------------------------------------------
scripts/pg.sh stop >>"$DATA/pg.log" 2>&1 || fail "cannot stop PostgreSQL"
code=000
for _ in $(seq 1 50); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/readyz")
  [ "$code" = 503 ] && break
  sleep 0.2
done
[ "$code" = 503 ] || fail "/readyz answered $code with PostgreSQL stopped, expected 503"
"$ENGINE" exec "$NAME" /usr/local/bin/circa-entrypoint --healthcheck \
  || fail "the HEALTHCHECK fails while PostgreSQL is down: the container would be restarted"
scripts/pg.sh start >>"$DATA/pg.log" 2>&1 || fail "cannot restart PostgreSQL"
wait_200 /readyz 30 || fail "circad did not reconnect to PostgreSQL within 30 s"
request GET /v1/events/docker-test-1
expect 200 "GET /v1/events/docker-test-1 after the reconnect"
say "healthy while PostgreSQL was down (readyz 503), reconnected after"

# ---- SIGTERM --------------------------------------------------------------------------------
t=$(date +%s%N)
"$ENGINE" stop -t 10 "$NAME" >/dev/null 2>&1 || fail "$ENGINE stop failed"
ms=$(( ($(date +%s%N) - t) / 1000000 ))
ec=$("$ENGINE" inspect --format '{{.State.ExitCode}}' "$NAME")
running && fail "the container still runs after $ENGINE stop"
[ "$ms" -lt 10000 ] || fail "SIGTERM: the container took ${ms} ms to stop (limit 10 s)"
[ "$ec" = 0 ] || fail "SIGTERM: circad exited with code $ec, expected 0"
say "SIGTERM: stopped in ${ms} ms with exit code 0"

# ---- starting again keeps the demo tenant and its key ---------------------------------------
"$ENGINE" start "$NAME" >/dev/null 2>&1 || fail "$ENGINE start (second start) failed"
wait_200 /readyz 60 || fail "circad did not become ready after a restart"
key2=$("$ENGINE" exec "$NAME" cat /var/lib/circa/admin.key)
[ "$key2" = "$KEY" ] || fail "the admin key changed across a restart"
request GET /v1/events/docker-test-1
expect 200 "GET /v1/events/docker-test-1 after a restart"
"$ENGINE" stop -t 10 "$NAME" >/dev/null 2>&1
[ "$("$ENGINE" inspect --format '{{.State.ExitCode}}' "$NAME")" = 0 ] || fail "second stop: exit code not 0"

# A new container with an empty data directory: the tenant exists, so it gets a new admin key.
"$ENGINE" run -d --name "$NAME-2" --network host \
  -e DATABASE_URL="$DBURL" -e CIRCA_LISTEN="$LISTEN" -e CIRCA_DEMO=1 -e CIRCA_LOG_FORMAT=text \
  "$IMAGE" >>"$DATA/run.log" 2>&1 || fail "$ENGINE run (second container) failed"
NAME_MAIN=$NAME NAME=$NAME-2
wait_200 /readyz 60 || fail "the second container did not become ready"
KEY=$("$ENGINE" exec "$NAME" cat /var/lib/circa/admin.key) || fail "no admin key in the second container"
[ "$KEY" != "$key2" ] || fail "the second container reused a key it cannot have known"
request GET /v1/events/docker-test-1
expect 200 "GET /v1/events/docker-test-1 with the second container's new key"
n=$("$ENGINE" exec "$NAME" circa tenants list | cut -f1 | grep -cx demo)
[ "$n" = 1 ] || fail "tenant demo listed $n times"
"$ENGINE" stop -t 10 "$NAME" >/dev/null 2>&1
"$ENGINE" rm -f "$NAME" >/dev/null 2>&1
NAME=$NAME_MAIN NAME_MAIN=""
say "restart keeps tenant and key; a fresh data directory gets a new key for the same tenant"

# ---- the wait for the database is bounded ---------------------------------------------------
t=$(date +%s)
"$ENGINE" run --name "$NAME-nodb" --network host \
  -e DATABASE_URL="postgresql://circa@127.0.0.1:1/circa" -e CIRCA_DB_WAIT=2 -e CIRCA_DEMO=1 \
  "$IMAGE" >"$DATA/nodb.log" 2>&1
ec=$?
el=$(( $(date +%s) - t ))
"$ENGINE" rm -f "$NAME-nodb" >/dev/null 2>&1
[ "$ec" = 1 ] || fail "with no database the entry point exited $ec, expected 1 (log: $DATA/nodb.log)"
grep -q 'not reachable after 2s' "$DATA/nodb.log" || fail "no clear message without a database: $(tail -1 "$DATA/nodb.log")"
say "no database: the entry point gave up after ${el}s (CIRCA_DB_WAIT=2) with exit code 1"

say "PASS ($(( $(date +%s) - T0 ))s)"
