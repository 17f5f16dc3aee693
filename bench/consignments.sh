#!/usr/bin/env bash
# bench/consignments.sh — what the consignment step (schema/120_consignments.sql) costs at
# ingest: a fresh private cluster and circad, then `circa demo` loads of the same park into new
# tenants, alternately with circa_consignment_derive a no-op ("off") and as migrated ("on").
#   BENCH_CONSIGN_EVENTS  events per load (default 200000)
#   BENCH_CONSIGN_ROUNDS  off/on pairs (default 2; the order alternates per round)
#   CIRCA_DATA_DIR, CIRCA_PG_PORT  the cluster (default var/bench-consign, 54384)
# One line per load: mode=off|on events=N seconds=S events_per_s=E cpu_ms_per_1000_events=C
# (user + system CPU of the PostgreSQL server, exited backends included, and circad over the
# load: the measure other work on the machine's cores inflates least).
set -euo pipefail
cd "$(dirname "$0")/.."
export CIRCA_DATA_DIR=${CIRCA_DATA_DIR:-var/bench-consign} CIRCA_PG_PORT=${CIRCA_PG_PORT:-54384}
EVENTS=${BENCH_CONSIGN_EVENTS:-200000}
ROUNDS=${BENCH_CONSIGN_ROUNDS:-2}
LISTEN=${BENCH_CONSIGN_LISTEN:-127.0.0.1:18384}
URL=http://$LISTEN
LOG=$CIRCA_DATA_DIR/circad.log
BENCH_SAVED=$CIRCA_DATA_DIR/consignment_derive.sql
CIRCAD_PID=
DEMO_PID=

. bench/lib.sh
say() { printf 'bench-consignments: %s\n' "$*" >&2; }

cleanup() {
  local rc=$?
  bench_stop_pid "$DEMO_PID"
  bench_derive_restore || true
  bench_stop_pid "$CIRCAD_PID"
  scripts/pg.sh stop >/dev/null 2>&1 || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_need bin/circad bin/circa

# The step as a no-op (bench/lib.sh); the migrated definition is put back by step_on.
step_off() {
  bench_save_functions "'circa_consignment_derive'"
  bench_noop_functions "'circa_consignment_derive'"
}
step_on() { bench_derive_restore; }

# CPU ms (user + system) of the server (its waited-for children included) and circad.
cpu_ms() {
  local pm t p
  pm=$(head -1 "$PGDIR/data/postmaster.pid")
  t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")
  for p in $(pgrep -P "$pm"); do
    t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  t=$((t + $(awk '{ print $14 + $15 }' "/proc/$CIRCAD_PID/stat")))
  echo $((t * 1000 / $(getconf CLK_TCK)))
}

load() {
  local mode=$1 n=$2 key c0 c1 t0 t1
  key=$(bin/circa tenants create "consign-$mode-$n-$RANDOM")
  [ "$mode" = off ] && step_off
  c0=$(cpu_ms) t0=$(date +%s.%N)
  bin/circa demo --url "$URL" --key "$key" --seed 1 --events "$EVENTS" >"$CIRCA_DATA_DIR/demo.out" &
  DEMO_PID=$!
  wait "$DEMO_PID" || die "circa demo failed or rejected events: $(tail -3 "$CIRCA_DATA_DIR/demo.out")"
  DEMO_PID=
  c1=$(cpu_ms) t1=$(date +%s.%N)
  [ "$mode" = off ] && step_on
  awk -v m="$mode" -v e="$EVENTS" -v s="$(echo "$t1 - $t0" | bc)" -v c=$((c1 - c0)) \
    'BEGIN { printf "mode=%s events=%d seconds=%.1f events_per_s=%.0f cpu_ms_per_1000_events=%.0f\n", m, e, s, e / s, c * 1000 / e }'
}

main() {
  local k
  bench_fresh_database
  bench_start_circad
  PGDIR=$(scripts/pg.sh url | sed 's/.*host=\([^&]*\).*/\1/')
  echo "run: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $EVENTS events per load, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  for k in $(seq "$ROUNDS"); do
    if [ $((k % 2)) = 1 ]; then load off "$k"; load on "$k"; else load on "$k"; load off "$k"; fi
  done
}

main "$@"
