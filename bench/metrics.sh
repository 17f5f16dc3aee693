#!/usr/bin/env bash
# bench/metrics.sh — the metrics benchmark: a fresh private cluster and circad, `circa demo` ingest rate with roll-ups maintained (and with only the roll-ups, then the whole derive step turned off, for their costs), then p50/p99 of GET /v1/metrics, /v1/flows and a 10-deep lot trace.
#   BENCH_METRICS_EVENTS   events of the big run (default 10000000; any smaller number for a quick run)
#   BENCH_METRICS_COMPARE  events of each derive off / roll-ups off / on run (default 200000, at most the above)
#   BENCH_METRICS_REQUESTS requests per read endpoint (default 200)
#   BENCH_METRICS_CONNS    keep-alive connections for the reads (default 4)
#   BENCH_METRICS_WARMUP   unmeasured requests per connection before each read scenario (default 2)
#   BENCH_STRICT=1         exit 1 when a target is missed, not only on errors
set -euo pipefail
cd "$(dirname "$0")/.."
export CIRCA_DATA_DIR=var/bench-metrics CIRCA_PG_PORT=54361
EVENTS=${BENCH_METRICS_EVENTS:-10000000}
COMPARE=${BENCH_METRICS_COMPARE:-200000}
[ "$COMPARE" -le "$EVENTS" ] || COMPARE=$EVENTS
REQUESTS=${BENCH_METRICS_REQUESTS:-200}
CONNS=${BENCH_METRICS_CONNS:-4}
WARMUP=${BENCH_METRICS_WARMUP:-2}
LISTEN=127.0.0.1:18361
URL=http://$LISTEN
YEAR=$(( $(date -u +%Y) - 1 ))         # circa demo's default year: the last full one
OUT=$CIRCA_DATA_DIR/results.txt
LOG=$CIRCA_DATA_DIR/circad.log
BENCH_SAVED=$CIRCA_DATA_DIR/derive.sql
CIRCAD_PID=

. bench/lib.sh
say() { printf 'bench-metrics: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
psql_() { bench_psql "$@"; }

cleanup() {
  local rc=$?
  bench_derive_restore 2>/dev/null || true
  bench_stop_circad
  scripts/pg.sh stop >/dev/null 2>&1 || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_need bin/circad bin/circa bin/bench/metrics_bench

start_database() {
  rm -f "$BENCH_SAVED"
  bench_fresh_database
}

tenant() { local k; k=$(bin/circa tenants create "$1") && [ -n "$k" ] || die "no key for tenant $1"; echo "$k"; }

# `circa demo` for a tenant; its machine-readable summary line on stdout.
demo() {
  local key=$1 seed=$2 n=$3 line
  scripts/pg.sh psql -q -c CHECKPOINT >/dev/null
  line=$(bin/circa demo --url "$URL" --key "$key" --seed "$seed" --events "$n" | grep '^demo seed=') \
    || die "circa demo failed (seed $seed, $n events)"
  [ "$(field rejected "$line")" = 0 ] || die "circa demo rejected events: $line"
  echo "$line"
}

# How much slower the second demo line's events/s is than the first's, in percent.
pct_slower() {
  awk -v a="$(field events_per_s "$1")" -v b="$(field events_per_s "$2")" \
    'BEGIN { printf "%.1f", (a > 0 ? 100 * (a - b) / a : 0) }'
}

verdict() { if awk -v ok="$1" 'BEGIN { exit !ok }'; then echo met; else echo MISSED; fi; }

machine() {
  echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo) RAM; PostgreSQL $(psql_ -c 'SHOW server_version' | cut -d' ' -f1)"
  echo "run: $(date -u +%Y-%m-%dT%H:%M:%SZ), $EVENTS events (year $YEAR), derive on/off on $COMPARE each, $REQUESTS requests per read on $CONNS connections"
}

reads() {
  local key=$1 q="from=$YEAR-01-01&to=$((YEAR + 1))-01-01"
  bin/bench/metrics_bench --scenario metrics --url "$URL/v1/metrics?$q" --key "$key" --requests "$REQUESTS" --connections "$CONNS" --warmup "$WARMUP"
  bin/bench/metrics_bench --scenario flows --url "$URL/v1/flows?$q" --key "$key" --requests "$REQUESTS" --connections "$CONNS" --warmup "$WARMUP"
  bin/bench/metrics_bench --scenario trace10 --url "$URL/v1/lots/CH-1-10/trace" --key "$key" --requests "$REQUESTS" --connections 1 --warmup "$WARMUP"
}

main() {
  local off norollup on big r key m f t cost rcost
  start_database
  bench_start_circad
  # The comparison runs on a database that has seen a park before and has statistics, as a
  # running one has: on an empty database the planner's estimates lag while the derived tables
  # grow from nothing, and whichever run came first paid for it (a "cost" below zero).
  say "warm-up: $COMPARE events into a tenant of their own, then ANALYZE"
  demo "$(tenant bench-warm)" 5 "$COMPARE" >/dev/null
  psql_ -c ANALYZE >/dev/null
  say "derive off: $COMPARE events (circa_derive_group a no-op in the bench database)"
  bench_derive_off
  off=$(demo "$(tenant bench-off)" 2 "$COMPARE")
  bench_derive_restore
  psql_ -c ANALYZE >/dev/null
  say "roll-ups off: $COMPARE events (the other derived state kept)"
  bench_rollups_off
  norollup=$(demo "$(tenant bench-norollup)" 4 "$COMPARE")
  bench_derive_restore
  psql_ -c ANALYZE >/dev/null
  say "derive on: $COMPARE events"
  on=$(demo "$(tenant bench-on)" 3 "$COMPARE")
  key=$(tenant bench-metrics)
  say "big run: $EVENTS events with roll-ups maintained"
  big=$(demo "$key" 1 "$EVENTS")
  psql_ -c ANALYZE >/dev/null
  say "reads: $REQUESTS requests each"
  r=$(reads "$key") || die "read requests failed: $r"
  m=$(echo "$r" | grep scenario=metrics); f=$(echo "$r" | grep scenario=flows); t=$(echo "$r" | grep scenario=trace10)
  cost=$(pct_slower "$off" "$on")
  rcost=$(pct_slower "$norollup" "$on")
  {
    machine; echo
    echo "ingest derive=off $off"; echo "ingest rollups=off $norollup"
    echo "ingest derive=on  $on"; echo "ingest big       $big"
    echo "$m"; echo "$f"; echo "$t"; echo
    echo "roll-up cost on ingest: $rcost % ($(field events_per_s "$on") vs $(field events_per_s "$norollup") events/s with only the roll-ups off)"
    echo "cost of all derived state on ingest: $cost % ($(field events_per_s "$on") vs $(field events_per_s "$off") events/s with the derive step off)"
    echo "target /v1/metrics p99 < 50 ms: $(verdict "$(awk -v p="$(field p99_ms "$m")" 'BEGIN{print (p < 50)}')")"
    if awk -v c="$rcost" 'BEGIN { exit !(c < 0) }'; then
      echo "target roll-ups cost ingest < 20 %: NO FIGURE (roll-ups off ran slower than on: the machine's load, not the roll-ups; run again)"
    else
      echo "target roll-ups cost ingest < 20 %: $(verdict "$(awk -v c="$rcost" 'BEGIN{print (c < 20)}')")"
    fi
    echo "target trace of 10 deep < 100 ms (p99): $(verdict "$(awk -v p="$(field p99_ms "$t")" 'BEGIN{print (p < 100)}')")"
  } | tee "$OUT"
  say "results in $OUT"
  if [ "${BENCH_STRICT:-0}" = 1 ] && grep -q "MISSED\|NO FIGURE" "$OUT"; then die "a target was missed"; fi
}

main "$@"
