#!/usr/bin/env bash
# bench/citus.sh (make bench-citus): ingest events/s (and CPU ms per 1,000 events of the servers and circad) and GET /v1/metrics p50/p99 for many tenants, on one plain PostgreSQL node and on the three-node Citus cluster (scripts/citus.sh), in the same run, with the same circad and load.
#   BENCH_SECONDS   length of the ingest phase per setup (default 5)
#   BENCH_TENANTS   tenants (default 100), each with one loadgen connection
#   BENCH_BATCH     events per request (default 20)
#   BENCH_METRICS   GET /v1/metrics requests per measured tenant (default 40, 10 tenants)
#   CIRCA_BIN       binaries (default bin)
# Every node of both setups and circad share this machine's cores: the figures compare the
# same hardware, not one node against three machines.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${CIRCA_BIN:-bin}
SECS=${BENCH_SECONDS:-5}
NT=${BENCH_TENANTS:-100}
BATCH=${BENCH_BATCH:-20}
NMET=${BENCH_METRICS:-40}
OUT=$ROOT/var/bench-citus
LISTEN=127.0.0.1:18399
URL=http://$LISTEN
RUN=c$(date +%s)
CIRCAD_PID= PIDS=()
export CIRCA_CITUS_DIR=$OUT/cluster CIRCA_CITUS_PORT=54381
unset DATABASE_URL

say() { printf 'bench-citus: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

stop_circad() {
  if [ -n "$CIRCAD_PID" ] && kill -0 "$CIRCAD_PID" 2>/dev/null; then
    kill -TERM "$CIRCAD_PID"; wait "$CIRCAD_PID" 2>/dev/null || true
  fi
  CIRCAD_PID=
}
cleanup() {
  local rc=$? p
  for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null; done
  stop_circad
  CIRCA_DATA_DIR=$OUT/single CIRCA_PG_PORT=54380 scripts/pg.sh stop >/dev/null 2>&1 || true
  scripts/citus.sh stop >/dev/null 2>&1 || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for b in "$BIN/circad" "$BIN/circa" "$BIN/bench/loadgen" "$BIN/bench/metrics_bench"; do
  [ -x "$b" ] || die "$b is missing: run 'make bench-bins'"
done
if [ ! -f "$(pg_config --pkglibdir 2>/dev/null)/citus.so" ]; then
  echo "SKIP bench-citus: citus.so is not installed (../shared/tools/citus-install.sh)"; exit 0
fi
if (exec 3<>"/dev/tcp/${LISTEN%:*}/${LISTEN#*:}") 2>/dev/null; then die "port ${LISTEN#*:} is taken"; fi
mkdir -p "$OUT"

field() { local f; for f in $2; do [ "${f%%=*}" = "$1" ] && { echo "${f#*=}"; return; }; done; echo 0; }

post() { # key path body
  local code
  code=$(curl -s -o "$OUT/post.out" -w '%{http_code}' -X POST "$URL/v1/$2" \
    -H "Authorization: Bearer $1" -H 'Content-Type: application/json' --data "$3")
  case "$code" in 200|201) ;; *) cat "$OUT/post.out" >&2; die "POST /v1/$2 answered $code";; esac
}

# CPU time (ms, user + system) of the PostgreSQL servers whose postmaster.pid files are given
# (their exited backends included, through the postmaster's waited-for children) and of circad:
# a measure the other work on this machine's cores does not inflate.
cpu_ms() {
  local t=0 f pm p
  for f in "$@"; do
    pm=$(head -1 "$f")
    t=$((t + $(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")))
    for p in $(pgrep -P "$pm"); do
      t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
  done
  t=$((t + $(awk '{ print $14 + $15 }' "/proc/$CIRCAD_PID/stat")))
  echo $((t * 1000 / $(getconf CLK_TCK)))
}

# One setup: migrate, NT tenants with master data, NT loadgens at once for SECS, then
# GET /v1/metrics on 10 tenants at once. Prints one summary line.
run_setup() {
  local name=$1 db=$2 i key keys=() t0 ev=0 err=0 secs line p99max=0 p50sum=0 n=0 pids cpu0 cpu
  if [ "$name" = citus ]; then pids=$(find -L "$CIRCA_CITUS_DIR" -maxdepth 3 -name postmaster.pid)
  else pids=$OUT/single/pg/data/postmaster.pid; fi
  DATABASE_URL=$db "$BIN/circa" migrate >"$OUT/$name.migrate.log" 2>&1 \
    || { cat "$OUT/$name.migrate.log" >&2; die "$name: migrate failed"; }
  DATABASE_URL=$db CIRCA_LISTEN=$LISTEN CIRCA_LOG=warn "$BIN/circad" 2>"$OUT/$name.circad.log" &
  CIRCAD_PID=$!
  for _ in $(seq 300); do curl -fs -o /dev/null "$URL/readyz" && break; sleep 0.1; done
  curl -fs -o /dev/null "$URL/readyz" || die "$name: circad not ready"
  for i in $(seq -w 1 "$NT"); do
    key=$(DATABASE_URL=$db "$BIN/circa" tenants create "$RUN-$name-$i")
    keys+=("$key")
    post "$key" parties '{"code":"P","name":"P","roles":["generator"],"country":"DE"}'
    post "$key" sites '{"code":"S","party":"P","name":"S","kind":"factory","country":"DE"}'
    post "$key" materials '{"code":"PET","name":"PET","density_kg_m3":1380}'
  done
  if [ "$name" = citus ]; then
    # Two-phase commits of the ingest phase alone: the coordinator keeps every record
    # (recovery off) from an empty pg_dist_transaction on.
    scripts/citus.sh psql -tAq -c "ALTER SYSTEM SET citus.recover_2pc_interval = -1" \
      -c "SELECT pg_reload_conf()" -c "SELECT recover_prepared_transactions()" >/dev/null
  fi
  say "$name: $NT tenants ready; ingest for $SECS s"
  PIDS=()
  for i in "${!keys[@]}"; do
    "$BIN/bench/loadgen" --url "$URL/v1/events" --key "${keys[$i]}" --connections 1 \
      --batch "$BATCH" --seconds "$SECS" --id-prefix "$RUN-$name-$i" --sites S --materials PET \
      --scenario "$name" >"$OUT/$name.load.$i" 2>/dev/null &
    PIDS+=($!)
  done
  t0=$(date +%s.%N) cpu0=$(cpu_ms $pids)
  wait "${PIDS[@]}" || true
  cpu=$(( $(cpu_ms $pids) - cpu0 ))
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  PIDS=()
  for i in "${!keys[@]}"; do
    line=$(cat "$OUT/$name.load.$i")
    ev=$((ev + $(field events "$line"))); err=$((err + $(field errors "$line")))
  done
  twopc=
  if [ "$name" = citus ]; then
    # Per transaction (gid citus_<group>_<pid>_<tx>_<n>): one participant is a commit on one
    # worker that took two phases (ingest); both workers is a reference-table write (the
    # api_key touch, once per key per 5 s).
    twopc=$(scripts/citus.sh psql -tAq -F' ' -c "SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n > 1)
             FROM (SELECT count(*) AS n FROM pg_dist_transaction
                    GROUP BY split_part(gid, '_', 3), split_part(gid, '_', 4)) t")
    twopc=" twopc_one_worker=${twopc% *} twopc_every_worker=${twopc#* }"
  fi
  say "$name: metrics on 10 tenants at once, $NMET requests each"
  for i in $(seq 0 9); do
    "$BIN/bench/metrics_bench" --url "$URL/v1/metrics?from=2020-01-01&to=2030-01-01" --key "${keys[$i]}" --requests "$NMET" \
      --connections 1 --scenario "$name" >"$OUT/$name.met.$i" 2>/dev/null &
    PIDS+=($!)
  done
  wait "${PIDS[@]}" || true
  PIDS=()
  for i in $(seq 0 9); do
    line=$(cat "$OUT/$name.met.$i")
    err=$((err + $(field errors "$line")))
    p99max=$(awk -v a="$p99max" -v b="$(field p99_ms "$line")" 'BEGIN { print (b > a ? b : a) }')
    p50sum=$(awk -v a="$p50sum" -v b="$(field p50_ms "$line")" 'BEGIN { print a + b }'); n=$((n + 1))
  done
  stop_circad
  printf '%-8s tenants=%s events=%s seconds=%s events_per_s=%s cpu_ms_per_1000_events=%s metrics_p50_ms=%s metrics_p99_ms=%s errors=%s%s\n' \
    "$name" "$NT" "$ev" "$secs" "$(awk -v e="$ev" -v s="$SECS" 'BEGIN { printf "%.0f", e / s }')" \
    "$(awk -v c="$cpu" -v e="$ev" 'BEGIN { printf "%.0f", e ? c * 1000 / e : 0 }')" \
    "$(awk -v a="$p50sum" -v n="$n" 'BEGIN { printf "%.1f", a / n }')" "$p99max" "$err" "$twopc"
}

say "one node: plain PostgreSQL 15"
CIRCA_DATA_DIR=$OUT/single CIRCA_PG_PORT=54380 scripts/pg.sh destroy >/dev/null 2>&1 || true
CIRCA_DATA_DIR=$OUT/single CIRCA_PG_PORT=54380 scripts/pg.sh start >&2
single=$(run_setup single "$(CIRCA_DATA_DIR=$OUT/single CIRCA_PG_PORT=54380 scripts/pg.sh url)")
CIRCA_DATA_DIR=$OUT/single CIRCA_PG_PORT=54380 scripts/pg.sh stop >/dev/null 2>&1 || true

say "three nodes: Citus coordinator + two workers"
scripts/citus.sh destroy >/dev/null 2>&1 || true
scripts/citus.sh start
cluster=$(run_setup citus "$(scripts/citus.sh url)")

{
  echo "# bench-citus $(date -u +%FT%TZ): $NT tenants, $SECS s, batch $BATCH, $(nproc) cores shared by every node"
  echo "$single"
  echo "$cluster"
} | tee -a "$OUT/results.txt"
