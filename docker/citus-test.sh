#!/usr/bin/env bash
# docker-citus-test: the `citus` profile of docker/compose.yaml, started from its own images.
#   1. docker/check_compose.py checks the file (wiring of the profile included);
#   2. the circa image and the Citus node image (docker/citus.Dockerfile, Citus built from
#      docker/vendor/ or ../shared/vendor/citus/ when there, else from GitHub) are built;
#   3. the profile's services run in their depends_on order with the compose file's image,
#      command and environment: the three nodes until healthy, citus-setup until it exits 0,
#      then circad-citus until /readyz. These machines put containers on the host network
#      (../shared/tools/podman-setup.sh), where every container shares the host's ports and
#      compose service names do not resolve: the nodes listen on 54371-54373 (PGPORT), the
#      service names become 127.0.0.1:port and circad listens on 127.0.0.1:18276;
#   4. through circad: master data and events of a new tenant (a lot, an item), GET /v1/metrics;
#      on the coordinator: the tables are distributed and the tenant's events are on a worker;
#      `circa verify` in the circad container.
# podman-compose (Debian 12: 1.0.3) knows no profiles, so compose itself is not what starts the
# containers here; `docker compose --profile citus up circad-citus` does elsewhere.
# Without a working podman or docker it prints "docker-citus-test: SKIP: <why>" and exits 0.
# Every container is removed (with its volumes) on every exit path.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=$ROOT/var/docker-citus-test
mkdir -p "$OUT"
T0=$(date +%s)
PORTS=(54371 54372 54373)
LISTEN=127.0.0.1:18276
TAG=$$
say() { printf 'docker-citus-test: %s\n' "$*"; }
skip() { say "SKIP: $*"; exit 0; }
ENGINE="" STARTED=()

cleanup() {
  local rc=$? c
  trap - EXIT INT TERM
  for c in "${STARTED[@]}"; do
    "$ENGINE" logs "$c" >"$OUT/$c.log" 2>&1 || true
    "$ENGINE" rm -f -v "$c" >/dev/null 2>&1 || true
  done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fail() { say "FAIL: $*"; exit 1; }

if command -v podman >/dev/null 2>&1 && podman info >/dev/null 2>&1; then ENGINE=podman
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then ENGINE=docker
else skip "neither 'podman info' nor 'docker info' works (docker/test.sh sets podman up)"; fi
for p in "${PORTS[@]}" "${LISTEN##*:}"; do
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && fail "127.0.0.1:$p is in use"
done

python3 docker/check_compose.py docker/compose.yaml || fail "docker/compose.yaml: see above"
# The profile's services as JSON: image, command, environment.
svc_json=$(python3 - <<'PY'
import json, yaml
doc = yaml.safe_load(open("docker/compose.yaml"))
out = {}
for name, s in doc["services"].items():
    if "citus" in (s.get("profiles") or []):
        env = s.get("environment") or {}
        out[name] = {"image": s["image"], "command": s.get("command") or [],
                     "env": {k: str(v) for k, v in env.items()},
                     "dockerfile": (s.get("build") or {}).get("dockerfile")}
print(json.dumps(out))
PY
) || fail "cannot read the profile"
jq_() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print($1)" "$svc_json"; }

vendor=$ROOT/../shared/vendor/citus/citus-13.2.2.tar.gz
[ -f docker/vendor/citus-13.2.2.tar.gz ] || { [ -f "$vendor" ] && cp "$vendor" docker/vendor/; }
fmt=(); [ "$ENGINE" = podman ] && fmt=(--format docker)
for s in citus-coordinator circad-citus; do
  image=$(jq_ "d['$s']['image']") dockerfile=$(jq_ "d['$s']['dockerfile']")
  t=$(date +%s)
  "$ENGINE" build "${fmt[@]}" -f "$dockerfile" -t "$image" . >"$OUT/build-$s.log" 2>&1 \
    || { tail -20 "$OUT/build-$s.log"; fail "building $image failed"; }
  say "built $image in $(( $(date +%s) - t ))s"
done
"$ENGINE" image prune -f --filter label=org.circa.stage=build >/dev/null 2>&1

# run service [extra -e …]: the service's image, command and environment, on the host network.
run() {
  local s=$1; shift
  local name=circa-citus-test-$s-$TAG args=() k
  for k in $(jq_ "' '.join(d['$s']['env'])"); do
    args+=(-e "$k=$(jq_ "d['$s']['env']['$k']")")
  done
  "$ENGINE" run -d --name "$name" --network host "${args[@]}" "$@" "$(jq_ "d['$s']['image']")" \
    $(jq_ "' '.join(d['$s']['command'])") >"$OUT/run-$s.log" 2>&1 || { cat "$OUT/run-$s.log"; fail "$s did not start"; }
  STARTED+=("$name")
}
healthy() { "$ENGINE" exec "circa-citus-test-$1-$TAG" citus-node --healthcheck >/dev/null 2>&1; }

nodes=(citus-coordinator citus-worker-1 citus-worker-2)
for i in 0 1 2; do run "${nodes[$i]}" -e PGPORT="${PORTS[$i]}"; done
for s in "${nodes[@]}"; do
  for _ in $(seq 120); do healthy "$s" && break; sleep 1; done
  healthy "$s" || fail "$s not healthy after 120 s"
done
say "3 nodes healthy (ports ${PORTS[*]})"

run citus-setup -e CITUS_COORDINATOR="127.0.0.1:${PORTS[0]}" \
  -e CITUS_WORKERS="127.0.0.1:${PORTS[1]} 127.0.0.1:${PORTS[2]}"
setup=circa-citus-test-citus-setup-$TAG
rc=$("$ENGINE" wait "$setup" 2>/dev/null | tail -1)
"$ENGINE" logs "$setup" 2>&1 | sed 's/^/  /'
[ "$rc" = 0 ] || fail "citus-setup exited $rc"

url=$(jq_ "d['circad-citus']['env']['DATABASE_URL']")
url=${url/@citus-coordinator:5432/@127.0.0.1:${PORTS[0]}}
run circad-citus -e DATABASE_URL="$url" -e CIRCA_LISTEN="$LISTEN" -e CIRCA_LOG_FORMAT=text
ctr=circa-citus-test-circad-citus-$TAG
for _ in $(seq 120); do curl -fs -o /dev/null "http://$LISTEN/readyz" && break; sleep 1; done
curl -fs -o /dev/null "http://$LISTEN/readyz" || fail "circad-citus not ready after 120 s"
say "circad-citus ready on $LISTEN against the coordinator"

q() { PGPASSWORD=circa psql -X -tA -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U circa -d circa -c "$2"; }
dist=$(q "${PORTS[0]}" "SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'h'")
workers=$(q "${PORTS[0]}" "SELECT count(*) FROM pg_dist_node WHERE groupid > 0")
[ "$dist" -ge 20 ] && [ "$workers" = 2 ] || fail "$dist tables distributed, $workers workers"
say "circa migrate distributed $dist tables over $workers workers"

key=$("$ENGINE" exec "$ctr" cat /var/lib/circa/admin.key) || fail "no demo admin key"
post() {
  local code
  code=$(curl -s -o "$OUT/last.json" -w '%{http_code}' -X POST "http://$LISTEN$1" \
           -H "Authorization: Bearer $key" -H 'Content-Type: application/json' --data "$2")
  [ "$code" = "$3" ] || fail "POST $1: $code $(cat "$OUT/last.json")"
}
post /v1/parties '{"code":"ACME","name":"Acme","roles":["generator"],"country":"DE"}' 201
post /v1/sites '{"code":"ACME-1","party":"ACME","name":"Plant","kind":"factory","country":"DE"}' 201
post /v1/materials '{"code":"PET","name":"PET","density_kg_m3":1380}' 201
post /v1/events '[{"id":"c-1","type":"waste_generated","time":"2026-03-02T10:00:00Z","site":"ACME-1","material":"PET","ewc":"150102","lot":"L-1","quantity":{"value":1.5,"unit":"t"}},
                  {"id":"c-2","type":"waste_generated","time":"2026-03-03T10:00:00Z","site":"ACME-1","material":"PET","ewc":"150102","quantity":{"value":500,"unit":"kg"}}]' 201
code=$(curl -s -o "$OUT/metrics.json" -w '%{http_code}' -H "Authorization: Bearer $key" \
         "http://$LISTEN/v1/metrics?from=2026-03-01&to=2026-04-01")
[ "$code" = 200 ] || fail "GET /v1/metrics: $code $(cat "$OUT/metrics.json")"
shard=$(q "${PORTS[0]}" "SELECT get_shard_id_for_distribution_column('event', 'demo')")
port=$(q "${PORTS[0]}" "SELECT nodeport FROM pg_dist_shard_placement WHERE shardid = $shard")
n=$(q "$port" "SELECT count(*) FROM event_$shard WHERE tenant_id = 'demo'")
[ "$n" = 2 ] || fail "shard event_$shard on port $port holds $n of the tenant's events, expected 2"
lots=$(q "${PORTS[0]}" "SELECT count(*) FROM lot WHERE tenant_id = 'demo'")
[ "$lots" = 1 ] || fail "$lots lots derived"
say "2 events in shard event_$shard on the worker at port $port, 1 lot derived; GET /v1/metrics 200"
"$ENGINE" exec "$ctr" circa verify --tenant demo >"$OUT/verify.out" 2>&1 || { cat "$OUT/verify.out"; fail "circa verify"; }
say "circa verify: $(tail -1 "$OUT/verify.out")"
say "PASS ($(( $(date +%s) - T0 ))s)"
