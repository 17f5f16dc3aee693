#!/usr/bin/env bash
# Two circad processes against one database (CIRCA_TEST_DB, the Citus coordinator): both write the same tenant at once, the chain verifies, and idempotency and 409 hold across the two processes.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${CIRCA_BIN:-bin}
DB=${CIRCA_TEST_DB:?CIRCA_TEST_DB is needed (a migrated circa database)}
OUT=${CIRCA_DATA_DIR:-var/citus-test}/two-daemons
mkdir -p "$OUT"
PORTS=(18271 18272)
PIDS=() CURL_PIDS=()
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }

cleanup() {
  local p
  for p in "${CURL_PIDS[@]}" "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill -TERM "$p"; wait "$p" 2>/dev/null || true; fi
  done
}
trap cleanup EXIT

for i in 0 1; do
  if (exec 3<>"/dev/tcp/127.0.0.1/${PORTS[$i]}") 2>/dev/null; then fail "port ${PORTS[$i]} is taken"; fi
  DATABASE_URL=$DB CIRCA_LISTEN=127.0.0.1:${PORTS[$i]} CIRCA_LOG=warn "$BIN/circad" 2>"$OUT/circad$i.log" &
  PIDS+=($!)
done
for i in 0 1; do
  for _ in $(seq 300); do curl -fs -o /dev/null "http://127.0.0.1:${PORTS[$i]}/readyz" && break; sleep 0.1; done
  curl -fs -o /dev/null "http://127.0.0.1:${PORTS[$i]}/readyz" || fail "circad $i not ready"
done
A=http://127.0.0.1:${PORTS[0]} B=http://127.0.0.1:${PORTS[1]}

TENANT=two-$$-$(date +%s)
KEY=$(DATABASE_URL=$DB "$BIN/circa" tenants create "$TENANT")
[ -n "$KEY" ] || fail "no admin key"
post() { # base path body → status, body in $OUT/last
  curl -s -o "$OUT/last" -w '%{http_code}' -X POST "$1$2" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' --data "$3"
}
[ "$(post "$A" /v1/parties '{"code":"P1","name":"P1","roles":["generator"],"country":"DE"}')" = 201 ] || fail "party: $(cat "$OUT/last")"
# Master data made through one process is seen by the other (it reloads on a miss).
[ "$(post "$B" /v1/sites '{"code":"S1","party":"P1","name":"S1","kind":"factory","country":"DE"}')" = 201 ] || fail "site: $(cat "$OUT/last")"
[ "$(post "$A" /v1/materials '{"code":"PET","name":"PET","density_kg_m3":1380}')" = 201 ] || fail "material: $(cat "$OUT/last")"

# 1. Both processes write the tenant at once: every request succeeds (a process whose head is
#    stale retries after CA001), and every event is stored exactly once.
field() { local f; for f in $2; do [ "${f%%=*}" = "$1" ] && { echo "${f#*=}"; return; }; done; echo 0; }
"$BIN/bench/loadgen" --url "$A/v1/events" --key "$KEY" --connections 4 --batch 20 --seconds 4 \
  --id-prefix "$TENANT-a" --sites S1 --materials PET --scenario a >"$OUT/a.sum" &
CURL_PIDS+=($!)
"$BIN/bench/loadgen" --url "$B/v1/events" --key "$KEY" --connections 4 --batch 20 --seconds 4 \
  --id-prefix "$TENANT-b" --sites S1 --materials PET --scenario b >"$OUT/b.sum" &
CURL_PIDS+=($!)
wait "${CURL_PIDS[@]}"; CURL_PIDS=()
ea=$(field events "$(cat "$OUT/a.sum")"); eb=$(field events "$(cat "$OUT/b.sum")")
[ "$(field errors "$(cat "$OUT/a.sum")")" = 0 ] && [ "$(field errors "$(cat "$OUT/b.sum")")" = 0 ] \
  || fail "loadgen errors: $(cat "$OUT/a.sum") / $(cat "$OUT/b.sum")"
[ "$ea" -gt 0 ] && [ "$eb" -gt 0 ] || fail "a process stored nothing ($ea, $eb)"
stored=$(psql -X -tA "$DB" -c "SELECT count(*) FROM event WHERE tenant_id = '$TENANT'")
[ "$stored" -eq $((ea + eb)) ] || fail "stored $stored events, acknowledged $((ea + eb))"
seqs=$(psql -X -tA "$DB" -c "SELECT count(DISTINCT seq) = count(*) AND max(seq) = count(*) FROM event WHERE tenant_id = '$TENANT'")
[ "$seqs" = t ] || fail "seqs are not 1..n"
ok "two processes stored $ea + $eb events in one chain, seqs 1..$stored"
retries=$(cat "$OUT"/circad*.log | grep -c 'CA001\|head moved\|retry' || true)
echo "   (head-moved retries logged: $retries)"

# 2. Idempotency and conflict across processes.
ev='{"id":"x-1","type":"waste_generated","time":"2026-11-25T10:15:00+01:00","site":"S1","material":"PET","ewc":"150102","quantity":{"value":1.5,"unit":"t"}}'
other='{"id":"x-1","type":"waste_generated","time":"2026-11-25T10:15:00+01:00","site":"S1","material":"PET","ewc":"150102","quantity":{"value":2.5,"unit":"t"}}'
[ "$(post "$A" /v1/events "$ev")" = 201 ] || fail "first post: $(cat "$OUT/last")"
[ "$(post "$B" /v1/events "$ev")" = 200 ] || fail "same event through the other process: $(cat "$OUT/last")"
grep -q '"duplicates":1' "$OUT/last" || fail "not counted as a duplicate: $(cat "$OUT/last")"
[ "$(post "$B" /v1/events "$other")" = 409 ] || fail "other content through the other process: $(cat "$OUT/last")"
ok "duplicate (200) and conflict (409) across processes"

# 3. The same new event raced through both processes: exactly one 201, every other 200 (or 409
#    for the other content), one row stored.
for n in $(seq 1 8); do
  body=${ev//x-1/race-$n}
  for i in 0 1 2 3; do
    base=$A; [ $((i % 2)) = 1 ] && base=$B
    curl -s -o /dev/null -w '%{http_code}\n' -X POST "$base/v1/events" -H "Authorization: Bearer $KEY" \
      -H 'Content-Type: application/json' --data "$body" >"$OUT/race-$n-$i" &
    CURL_PIDS+=($!)
  done
done
wait "${CURL_PIDS[@]}"; CURL_PIDS=()
for n in $(seq 1 8); do
  c201=$(cat "$OUT"/race-"$n"-* | grep -c '^201$' || true)
  c200=$(cat "$OUT"/race-"$n"-* | grep -c '^200$' || true)
  [ "$c201" = 1 ] && [ "$c200" = 3 ] || fail "race $n: $(cat "$OUT"/race-"$n"-* | tr '\n' ' ')"
  [ "$(psql -X -tA "$DB" -c "SELECT count(*) FROM event WHERE tenant_id = '$TENANT' AND id = 'race-$n'")" = 1 ] \
    || fail "race $n stored twice"
done
ok "8 races of 4 posts through two processes: one 201 and three 200 each, one row"

DATABASE_URL=$DB "$BIN/circa" verify --tenant "$TENANT" || fail "chain does not verify"
ok "chain of $TENANT verifies"
for i in 0 1; do
  kill -TERM "${PIDS[$i]}"; wait "${PIDS[$i]}" || fail "circad $i exited non-zero"
done
PIDS=()
ok "both circad processes stopped cleanly"
