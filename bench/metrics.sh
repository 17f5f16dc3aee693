#!/usr/bin/env bash
# bench/metrics.sh — the metrics benchmark: a fresh private cluster and circad, `circa demo` ingest rate with roll-ups maintained (and with only the roll-ups, then the whole derive step turned off, for their costs), then p50/p99 of GET /v1/metrics, /v1/flows and a 10-deep lot trace.
#   BENCH_METRICS_EVENTS   events of the big run (default 10000000; any smaller number for a quick run)
#   BENCH_METRICS_COMPARE  events of each derive off / roll-ups off / on run (default 200000, at most the above)
#   BENCH_METRICS_REQUESTS requests per read endpoint (default 200)
#   BENCH_METRICS_CONNS    keep-alive connections for the reads (default 4)
#   BENCH_METRICS_WARMUP   unmeasured requests per connection before each read scenario (default 2)
#   BENCH_METRICS_ROUNDS   rounds of the roll-up comparison, roll-ups off and on in ABBA order (default 4)
#   BENCH_METRICS_ORDER    order of circa demo's events: time (default, as a park reports them) or
#                          unit (each lot's and item's events together: every request spans the year)
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
ORDER=${BENCH_METRICS_ORDER:-time}
ROUNDS=${BENCH_METRICS_ROUNDS:-4}
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

# CPU time so far, in clock ticks, of circad and the whole cluster: the postmaster's own and
# its reaped children's (autovacuum workers come and go), and each live child's. Wall time on
# this shared 2-CPU machine varies by tens of percent from run to run; CPU time much less.
cpu_ticks() {
  local pm p t
  pm=$(head -1 "$(scripts/pg.sh url | sed 's/.*host=\([^&]*\).*/\1/')/data/postmaster.pid")
  t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")
  for p in $(pgrep -P "$pm") "$CIRCAD_PID"; do
    t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}

# `circa demo` for a tenant; its machine-readable summary line on stdout, with the CPU time
# circad and PostgreSQL spent on it (cpu_ms, after the checkpoint that precedes it).
demo() {
  local key=$1 seed=$2 n=$3 line t0
  scripts/pg.sh psql -q -c CHECKPOINT >/dev/null
  t0=$(cpu_ticks)
  line=$(bin/circa demo --url "$URL" --key "$key" --seed "$seed" --events "$n" --order "$ORDER" \
           | grep '^demo seed=') \
    || die "circa demo failed (seed $seed, $n events)"
  [ "$(field rejected "$line")" = 0 ] || die "circa demo rejected events: $line"
  echo "$line cpu_ms=$(( ($(cpu_ticks) - t0) * 1000 / $(getconf CLK_TCK) ))"
}

# How much smaller b is than a, in percent of a.
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (a > 0 ? 100 * (a - b) / a : 0) }'; }

# How much slower the second demo line's events/s is than the first's, in percent.
pct_slower() { pct "$(field events_per_s "$1")" "$(field events_per_s "$2")"; }

# events/s over several demo lines: all their events (and replacements) over all their seconds.
pooled() {
  local line n=0 secs=0
  for line in "$@"; do
    n=$((n + $(field events "$line") + $(field replacements "$line")))
    secs=$(awk -v a="$secs" -v b="$(field seconds "$line")" 'BEGIN { print a + b }')
  done
  awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'
}

# CPU ms over several demo lines, summed.
cpu_sum() {
  local line ms=0
  for line in "$@"; do ms=$((ms + $(field cpu_ms "$line"))); done
  echo "$ms"
}

# The roll-up comparison: rounds of roll-ups off and on (same seed, new tenants). Each run adds
# to the database and later runs cost more, so the order goes off-on, on-off, on-off, off-on
# (ABBA: a steady trend falls on both alike). Autovacuum is paused for the comparison and each
# run starts after VACUUM ANALYZE and a checkpoint, so a vacuum of the whole event table left
# by an earlier run is not charged to whichever run it happens to meet. Prints one line per
# run ("off <demo line>" / "on <demo line>").
rollup_rounds() {
  local i
  psql_ -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" >/dev/null
  for i in $(seq "$ROUNDS"); do
    say "round $i of $ROUNDS: roll-ups off and on, $COMPARE events each"
    case $((i % 4)) in
      1|0) rollups_off_run "$i"; rollups_on_run "$i" ;;
      *) rollups_on_run "$i"; rollups_off_run "$i" ;;
    esac
  done
  psql_ -c "ALTER SYSTEM RESET autovacuum" -c "SELECT pg_reload_conf()" >/dev/null
}
rollups_off_run() {
  psql_ -c "VACUUM ANALYZE" >/dev/null
  bench_rollups_off
  echo "off $(demo "$(tenant "bench-norollup-$1")" 3 "$COMPARE")"
  bench_derive_restore
}
rollups_on_run() {
  psql_ -c "VACUUM ANALYZE" >/dev/null
  echo "on $(demo "$(tenant "bench-on-$1")" 3 "$COMPARE")"
}

verdict() { if awk -v ok="$1" 'BEGIN { exit !ok }'; then echo met; else echo MISSED; fi; }

machine() {
  echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo) RAM; PostgreSQL $(psql_ -c 'SHOW server_version' | cut -d' ' -f1)"
  echo "run: $(date -u +%Y-%m-%dT%H:%M:%SZ), $EVENTS events (year $YEAR), derive on/off on $COMPARE each, events in $ORDER order, $REQUESTS requests per read on $CONNS connections"
}

reads() {
  local key=$1 q="from=$YEAR-01-01&to=$((YEAR + 1))-01-01"
  bin/bench/metrics_bench --scenario metrics --url "$URL/v1/metrics?$q" --key "$key" --requests "$REQUESTS" --connections "$CONNS" --warmup "$WARMUP"
  bin/bench/metrics_bench --scenario flows --url "$URL/v1/flows?$q" --key "$key" --requests "$REQUESTS" --connections "$CONNS" --warmup "$WARMUP"
  bin/bench/metrics_bench --scenario trace10 --url "$URL/v1/lots/CH-1-10/trace" --key "$key" --requests "$REQUESTS" --connections 1 --warmup "$WARMUP"
}

main() {
  local off on big r key m f t cost rcost runs roff ron l coff con ccost
  local -a offs ons
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
  runs=$(rollup_rounds)
  mapfile -t offs < <(echo "$runs" | sed -n 's/^off //p')
  mapfile -t ons < <(echo "$runs" | sed -n 's/^on //p')
  on=${ons[0]}
  key=$(tenant bench-metrics)
  say "big run: $EVENTS events with roll-ups maintained"
  big=$(demo "$key" 1 "$EVENTS")
  psql_ -c ANALYZE >/dev/null
  say "reads: $REQUESTS requests each"
  r=$(reads "$key") || die "read requests failed: $r"
  m=$(echo "$r" | grep scenario=metrics); f=$(echo "$r" | grep scenario=flows); t=$(echo "$r" | grep scenario=trace10)
  cost=$(pct_slower "$off" "$on")
  roff=$(pooled "${offs[@]}"); ron=$(pooled "${ons[@]}")
  rcost=$(pct "$roff" "$ron")
  coff=$(cpu_sum "${offs[@]}"); con=$(cpu_sum "${ons[@]}")
  ccost=$(pct "$con" "$coff")   # the share of the CPU with roll-ups that they took
  {
    machine; echo
    echo "ingest derive=off $off"
    for l in "${offs[@]}"; do echo "ingest rollups=off $l"; done
    for l in "${ons[@]}"; do echo "ingest derive=on  $l"; done
    echo "ingest big       $big"
    echo "$m"; echo "$f"; echo "$t"; echo
    echo "roll-up cost on ingest: $rcost % ($ron vs $roff events/s with only the roll-ups off; $ROUNDS rounds of $COMPARE events each way, pooled; per round: $(for i in "${!ons[@]}"; do printf '%s ' "$(pct_slower "${offs[$i]}" "${ons[$i]}")"; done)%)"
    echo "roll-up cost in CPU: $ccost % (circad and PostgreSQL: $con ms with the roll-ups, $coff ms without, same events; per round: $(for i in "${!ons[@]}"; do printf '%s ' "$(pct "$(field cpu_ms "${ons[$i]}")" "$(field cpu_ms "${offs[$i]}")")"; done)%)"
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
