#!/usr/bin/env bash
# bench/reports.sh — the reports benchmark: a fresh private cluster and circad, `circa demo`
# data (a year of a park's flows), then the time of POST /v1/reports for each report type over
# the demo year (the whole tenant, no site scope), a few times each.
#   BENCH_REPORT_EVENTS   events of the demo (default 10000000; 1000000 for a quick run)
#   BENCH_REPORT_RUNS     POSTs per report type (default 3)
#   BENCH_REPORT_TYPES    report types (default: all four)
#   BENCH_STRICT=1        exit 1 when the waste-register target (< 5 s) is missed
#   BENCH_REPORT_SITE     also POST the waste register and prtr_transfers scoped to this site
#   BENCH_REPORT_KEY      an existing, loaded cluster instead of a fresh one: the tenant's admin
#                         key; CIRCA_DATA_DIR and CIRCA_PG_PORT name the (stopped) cluster, which
#                         is started and stopped again; BENCH_REPORT_YEAR the year of its events
# Prints one line per POST: scenario=report_<type> events=N run=K seconds=S status=201 bytes=B
# (B: size of the stored canonical JSON), then the best and worst of each type.
set -euo pipefail
cd "$(dirname "$0")/.."
KEY=${BENCH_REPORT_KEY:-}
if [ -z "$KEY" ]; then export CIRCA_DATA_DIR=var/bench-reports CIRCA_PG_PORT=54382; fi
export CIRCA_DATA_DIR CIRCA_PG_PORT
EVENTS=${BENCH_REPORT_EVENTS:-10000000}
RUNS=${BENCH_REPORT_RUNS:-3}
TYPES=${BENCH_REPORT_TYPES:-waste_register prtr_transfers circularity_summary recovery_certificate}
LISTEN=${BENCH_REPORT_LISTEN:-127.0.0.1:18382}
URL=http://$LISTEN
YEAR=${BENCH_REPORT_YEAR:-$(( $(date -u +%Y) - 1 ))}   # circa demo's default: the last full year
SITE=${BENCH_REPORT_SITE:-}
OUT=$CIRCA_DATA_DIR/results.txt
LOG=$CIRCA_DATA_DIR/circad.log
CIRCAD_PID=
DEMO_PID=

. bench/lib.sh
say() { printf 'bench-reports: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
psql_() { bench_psql "$@"; }

cleanup() {
  local rc=$?
  bench_stop_pid "$DEMO_PID"
  bench_stop_pid "$CIRCAD_PID"
  scripts/pg.sh stop >/dev/null 2>&1 || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_need bin/circad bin/circa


# `circa demo` in the background (so cleanup can stop it by pid); its summary line on stdout.
demo() {
  local key=$1 n=$2 line
  bin/circa demo --url "$URL" --key "$key" --seed 1 --events "$n" >"$CIRCA_DATA_DIR/demo.out" &
  DEMO_PID=$!
  wait "$DEMO_PID" || die "circa demo failed: $(tail -3 "$CIRCA_DATA_DIR/demo.out")"
  DEMO_PID=
  line=$(grep '^demo seed=' "$CIRCA_DATA_DIR/demo.out") || die "circa demo printed no summary"
  [ "$(field rejected "$line")" = 0 ] || die "circa demo rejected events: $line"
  echo "$line"
}

# The body of each report type over the demo year; the recovery certificate is the
# collector's (PARKWASTE) deliveries to the recycler (GREENCYCLE); type@SITE: scoped to SITE.
body() {
  local extra=
  [ "$1" = recovery_certificate ] && extra=',"generator":"PARKWASTE","recycler":"GREENCYCLE"'
  case $1 in *@*) extra=",\"site\":\"${1#*@}\""; set -- "${1%@*}" ;; esac
  printf '{"type":"%s","from":"%d-01-01","to":"%d-01-01"%s}' "$1" "$YEAR" $((YEAR + 1)) "$extra"
}

# One POST /v1/reports: "seconds status id" (curl's total time, first byte written to last read).
post() {
  local key=$1 type=$2 r
  r=$(curl -sS -o "$CIRCA_DATA_DIR/last.json" -w '%{time_total} %{http_code}' --max-time 3600 \
        -X POST "$URL/v1/reports" -H "Authorization: Bearer $key" \
        -H 'Content-Type: application/json' -d "$(body "$type")") || r="0 000"
  echo "$r $(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' "$CIRCA_DATA_DIR/last.json" | head -1)"
}

machine() {
  echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo) RAM; PostgreSQL $(psql_ -c 'SHOW server_version' | cut -d' ' -f1)"
  echo "run: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $EVENTS events (year $YEAR), $RUNS POSTs per type"
}

main() {
  local key line t k r secs status id bytes worst errors v
  if [ -n "$KEY" ]; then
    scripts/pg.sh start >&2
    DATABASE_URL=$(scripts/pg.sh url); export DATABASE_URL
    bench_start_circad
    key=$KEY
    EVENTS=$(psql_ -c "SELECT count(*) FROM event WHERE tenant_id = (SELECT tenant_id FROM api_key WHERE key_id = split_part('$KEY', '_', 2))")
    line="existing cluster $CIRCA_DATA_DIR"
  else
    bench_fresh_database
    bench_start_circad
    key=$(bin/circa tenants create bench-reports) && [ -n "$key" ] || die "no key for the tenant"
    say "loading $EVENTS demo events (circa demo, seed 1)"
    line=$(demo "$key" "$EVENTS")
    psql_ -c ANALYZE >/dev/null
  fi
  if [ -n "$SITE" ]; then
    for t in waste_register prtr_transfers; do
      case " $TYPES " in *" $t "*) TYPES="$TYPES $t@$SITE" ;; esac
    done
  fi
  say "reports: $RUNS POSTs per type"
  {
    machine
    echo "ingest $line"
    for t in $TYPES; do
      for k in $(seq "$RUNS"); do
        r=$(post "$key" "$t"); secs=${r%% *}; r=${r#* }; status=${r%% *}; id=${r#* }
        bytes=0
        [ "$status" = 201 ] && [ -n "$id" ] \
          && bytes=$(psql_ -c "SELECT octet_length(canon) FROM report WHERE id = '$id'")
        echo "scenario=report_$t events=$EVENTS run=$k seconds=$secs status=$status bytes=$bytes"
      done
    done
  } | tee "$OUT"
  errors=$(grep -c 'status=[^2]' "$OUT" || true)
  worst=$(awk '/scenario=report_waste_register / { for (i = 1; i <= NF; i++) if ($i ~ /^seconds=/) { s = substr($i, 9) + 0; if (s > w) w = s } } END { print w + 0 }' "$OUT")
  {
    awk '/^scenario=/ { split($1, a, "="); for (i = 1; i <= NF; i++) if ($i ~ /^seconds=/) s = substr($i, 9) + 0;
           if (!(a[2] in lo) || s < lo[a[2]]) lo[a[2]] = s; if (s > hi[a[2]]) hi[a[2]] = s; n[a[2]]++ }
         END { for (k in lo) printf "%s: best %.2f s, worst %.2f s over %d runs\n", k, lo[k], hi[k], n[k] }' "$OUT" | sort
    if [ "$errors" -eq 0 ] && awk -v w="$worst" 'BEGIN { exit !(w < 5) }'; then v=met; else v=MISSED; fi
    echo "target waste register of a year < 5 s ($EVENTS events; worst of $RUNS): $v"
  } | tee -a "$OUT"
  say "results in $OUT"
  [ "$errors" -eq 0 ] || die "$errors report requests failed (see $LOG)"
  if [ "${BENCH_STRICT:-0}" = 1 ] && grep -q MISSED "$OUT"; then die "the target was missed"; fi
}

main "$@"
