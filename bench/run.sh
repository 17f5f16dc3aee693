#!/usr/bin/env bash
# bench/run.sh — the ingest benchmark: a fresh private cluster and circad, 1,000-event batches and single events over HTTP, the COPY reference, a table of ratios and circad's peak RSS.
#   BENCH_SECONDS      length of each HTTP scenario (default 10)
#   BENCH_BATCH_CONNS  connections of the batch scenario (default 4; each has one request in flight)
#   BENCH_SINGLE_CONNS connections of the single-event scenario (default 64)
#   BENCH_ROLLUP_ROUNDS rounds of the roll-up cost comparison (default 2; 0 skips it): batches
#                      with only the roll-ups off, then on, BENCH_SECONDS/2 each, alternating
#   BENCH_STRICT=1     exit 1 when a target is missed, not only on errors
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CIRCA_DATA_DIR=var/bench CIRCA_PG_PORT=54359
SECS=${BENCH_SECONDS:-10}
BATCH_CONNS=${BENCH_BATCH_CONNS:-4}
SINGLE_CONNS=${BENCH_SINGLE_CONNS:-64}
LISTEN=127.0.0.1:18099
URL=http://$LISTEN
TENANT=bench
RUN=r$(date +%s)                      # id prefix: runs never collide
SITES=BENCH-1,BENCH-2,BENCH-3,BENCH-4
MATERIALS=PET,HDPE,PP,PAPER
OUT=$CIRCA_DATA_DIR/results.txt
LOG=$CIRCA_DATA_DIR/circad.log
RSS_FILE=$CIRCA_DATA_DIR/rss.peak
BENCH_SAVED=$CIRCA_DATA_DIR/derive.sql
ROUNDS=${BENCH_ROLLUP_ROUNDS:-2}
CIRCAD_PID= SAMPLER_PID=

. bench/lib.sh

cleanup() {
  local rc=$?
  if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; fi
  bench_derive_restore 2>/dev/null || true
  bench_stop_circad
  scripts/pg.sh stop >/dev/null 2>&1 || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_need bin/circad bin/circa bin/bench/loadgen bin/bench/copyload

start_database() {
  bench_fresh_database
  ADMIN_KEY=$(bin/circa tenants create "$TENANT")
  [ -n "$ADMIN_KEY" ] || die "circa tenants create printed no key"
}


# POST one master-data record as the admin: 201 (created) or 200 (identical one exists).
post() {
  local code
  code=$(curl -s -o "$CIRCA_DATA_DIR/post.out" -w '%{http_code}' -X POST "$URL/v1/$1" \
    -H "Authorization: Bearer $ADMIN_KEY" -H 'Content-Type: application/json' --data "$2")
  case "$code" in 200|201) ;; *) cat "$CIRCA_DATA_DIR/post.out" >&2; die "POST /v1/$1 answered $code";; esac
}

create_master_data() {
  post parties '{"code":"BENCH","name":"Bench Plastics","roles":["generator","manufacturer"],"country":"DE"}'
  local s m
  for s in ${SITES//,/ }; do
    post sites "{\"code\":\"$s\",\"party\":\"BENCH\",\"name\":\"Plant $s\",\"kind\":\"factory\",\"country\":\"DE\"}"
  done
  for m in ${MATERIALS//,/ }; do
    post materials "{\"code\":\"$m\",\"name\":\"$m\",\"category\":\"plastic\",\"hazardous\":false,\"renewable\":false,\"density_kg_m3\":1000,\"value_per_kg\":0.3}"
  done
  INGEST_KEY=$(bin/circa keys create --tenant "$TENANT" --party BENCH --role ingest)
  [ -n "$INGEST_KEY" ] || die "circa keys create printed no key"
}

# Peak VmRSS (kB) of circad into $RSS_FILE, sampled every 0.1 s, bounded to one hour.
sample_rss() {
  local peak=0 k v _
  for _ in $(seq 36000); do
    [ -r "/proc/$CIRCAD_PID/status" ] || break
    while read -r k v _; do
      if [ "$k" = VmRSS: ] && [ "$v" -gt "$peak" ]; then peak=$v; fi
    done <"/proc/$CIRCAD_PID/status" || break
    echo "$peak" >"$RSS_FILE"
    sleep 0.1
  done
}

# Runs one loadgen scenario; its summary line goes to stdout and into the results.
loadgen() {
  local name=$1 conns=$2 batch=$3 secs=$4
  scripts/pg.sh psql -q -c CHECKPOINT >/dev/null
  bin/bench/loadgen --url "$URL/v1/events" --key "$INGEST_KEY" --connections "$conns" \
    --batch "$batch" --seconds "$secs" --id-prefix "$RUN-$name" --sites "$SITES" \
    --materials "$MATERIALS" --scenario "$name"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "-" }'; }
verdict() { if awk -v ok="$1" 'BEGIN { exit !ok }'; then echo met; else echo MISSED; fi; }

# The table, from the three summary lines and the peak RSS.
report() {
  local b=$1 s=$2 c=$3 rss_kb=$4 copy_rate line name
  copy_rate=$(field events_per_s "$c")
  printf '%-8s %10s %8s %12s %8s %8s %7s %8s\n' scenario events seconds events/s p50_ms p99_ms errors vs_COPY
  for line in "$b" "$s" "$c"; do
    name=$(field scenario "$line")
    printf '%-8s %10s %8s %12s %8s %8s %7s %8s\n' "$name" "$(field events "$line")" \
      "$(field seconds "$line")" "$(field events_per_s "$line")" \
      "$( [ "$name" = copy ] && echo - || field p50_ms "$line")" \
      "$( [ "$name" = copy ] && echo - || field p99_ms "$line")" \
      "$( [ "$name" = copy ] && echo - || field errors "$line")" \
      "$(ratio "$(field events_per_s "$line")" "$copy_rate")"
  done
  local br sr mb
  br=$(field events_per_s "$b"); sr=$(field events_per_s "$s")
  mb=$(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }')
  echo "peak circad RSS: $mb MB"
  echo "target batch >= 75% of COPY: $(verdict "$(awk -v a="$br" -v c="$copy_rate" 'BEGIN{print (a >= 0.75*c)}')")"
  echo "target single >= 10000 events/s: $(verdict "$(awk -v a="$sr" 'BEGIN{print (a >= 10000)}')")"
  echo "target circad RSS < 100 MB: $(verdict "$(awk -v k="$rss_kb" 'BEGIN{print (k < 102400)}')")"
}

# What maintaining the roll-ups costs these flow events: 1,000-event batches with only the
# roll-ups off (bench/lib.sh), then on, alternating, so that drift in the machine's load and the
# tables' growth falls on both. Prints the mean events/s of each and the cost in percent.
rollup_cost() {
  local half=$(( (SECS + 1) / 2 )) i off=0 on=0 line
  for i in $(seq "$ROUNDS"); do
    bench_rollups_off
    line=$(loadgen "norollup$i" "$BATCH_CONNS" 1000 "$half") || return 1
    echo "$line" >&2; off=$(awk -v a="$off" -v b="$(field events_per_s "$line")" 'BEGIN { print a + b }')
    bench_derive_restore
    line=$(loadgen "rollup$i" "$BATCH_CONNS" 1000 "$half") || return 1
    echo "$line" >&2; on=$(awk -v a="$on" -v b="$(field events_per_s "$line")" 'BEGIN { print a + b }')
  done
  awk -v off="$off" -v on="$on" -v n="$ROUNDS" 'BEGIN {
    printf "roll-up cost on 1,000-event batches: %.1f %% (%.0f events/s with roll-ups vs %.0f with only the roll-ups off, mean of %d alternating rounds)\n",
           100 * (off - on) / off, on / n, off / n, n }'
}

machine() {
  echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo) RAM; PostgreSQL $(scripts/pg.sh psql -tAc 'SHOW server_version' | cut -d' ' -f1)"
  echo "run: $RUN, $(date -u +%Y-%m-%dT%H:%M:%SZ), ${SECS} s per HTTP scenario, batch on $BATCH_CONNS connections, single on $SINGLE_CONNS"
}

main() {
  local b s c rc=0 rows
  start_database
  bench_start_circad
  create_master_data
  sample_rss & SAMPLER_PID=$!
  say "warm-up (1 s)"
  loadgen warmup 4 100 1 >/dev/null
  say "batch: 1,000-event requests on $BATCH_CONNS connections for $SECS s"
  b=$(loadgen batch "$BATCH_CONNS" 1000 "$SECS") || rc=1
  say "single: one-event requests on $SINGLE_CONNS connections for $SECS s"
  s=$(loadgen single "$SINGLE_CONNS" 1 "$SECS") || rc=1
  kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=
  rows=$(field events "$b"); [ "$rows" -gt 0 ] || rows=10000
  say "copy: $rows rows with COPY, 1,000 per transaction"
  scripts/pg.sh psql -q -c CHECKPOINT >/dev/null
  c=$(bin/bench/copyload --tenant bench-copy --events "$rows" --id-prefix "$RUN-copy" \
      --sites "$SITES" --materials "$MATERIALS") || rc=1
  local cost=
  if [ "$ROUNDS" -gt 0 ]; then
    say "roll-up cost: $ROUNDS rounds of batches with only the roll-ups off, then on"
    cost=$(rollup_cost) || rc=1
  fi
  { machine; echo; echo "$b"; echo "$s"; echo "$c"; echo; report "$b" "$s" "$c" "$(cat "$RSS_FILE" 2>/dev/null || echo 0)"
    [ -z "$cost" ] || echo "$cost"; } | tee "$OUT"
  say "results in $OUT"
  bin/circa verify --tenant "$TENANT" >&2 || rc=1
  bin/circa verify --tenant bench-copy >&2 || rc=1
  [ "$rc" -eq 0 ] || die "a scenario failed or had errors: not a valid run"
  if [ "${BENCH_STRICT:-0}" = 1 ] && grep -q MISSED "$OUT"; then die "a target was missed"; fi
}

main "$@"
