# bench/lib.sh — what every benchmark script shares: messages, a fresh private cluster, circad
# started and stopped by pid, derived state switched off for cost comparisons. Source it after
# setting CIRCA_DATA_DIR, CIRCA_PG_PORT, LISTEN, URL and LOG (and BENCH_SAVED, where the switches
# keep what they turned off); it sets DATABASE_URL and CIRCAD_PID.

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# Each named program must be built; curl and the port must be free to use.
bench_need() {
  local b
  for b in "$@"; do [ -x "$b" ] || die "$b is missing: run 'make bench'"; done
  command -v curl >/dev/null || die "curl is needed"
  if (exec 3<>"/dev/tcp/${LISTEN%:*}/${LISTEN##*:}") 2>/dev/null; then die "port ${LISTEN##*:} is taken"; fi
}

# A fresh cluster each run, so every run starts from empty tables.
bench_fresh_database() {
  mkdir -p "$CIRCA_DATA_DIR"
  scripts/pg.sh destroy >/dev/null 2>&1 || true
  scripts/pg.sh start >&2
  DATABASE_URL=$(scripts/pg.sh url)
  export DATABASE_URL
  bin/circa migrate >&2
}

bench_start_circad() {
  CIRCA_LISTEN=$LISTEN CIRCA_LOG=warn bin/circad 2>"$LOG" &
  CIRCAD_PID=$!
  for _ in $(seq 300); do
    kill -0 "$CIRCAD_PID" 2>/dev/null || { tail -20 "$LOG" >&2; die "circad exited"; }
    curl -fs -o /dev/null "$URL/readyz" && return 0
    sleep 0.1
  done
  die "circad not ready after 30 s"
}

# SIGTERM to a process we started, then SIGKILL after 10 s.
bench_stop_pid() {
  local pid=${1:-}
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

bench_stop_circad() { bench_stop_pid "${CIRCAD_PID:-}"; }

# A field of a summary line: field events "scenario=batch events=12 ..." → 12
field() { local f; for f in $2; do [ "${f%%=*}" = "$1" ] && { echo "${f#*=}"; return; }; done; echo 0; }

bench_psql() { scripts/pg.sh psql -qtAX -v ON_ERROR_STOP=1 "$@"; }

# Derived state switched off in the bench's own database, for the cost comparisons only. The
# definitions (and the triggers' state) are saved to $BENCH_SAVED first and put back by
# bench_derive_restore, which every script's cleanup calls too. Parameter names stay as they are
# (CREATE OR REPLACE cannot rename them).
bench_save_functions() {
  bench_psql -c "SELECT string_agg(pg_get_functiondef(p.oid), E';\n') || ';' FROM pg_proc p
                 WHERE p.proname IN ($1)" >"$BENCH_SAVED"
}

bench_noop_functions() {
  bench_psql -c "DO \$\$ DECLARE f record; BEGIN
                   FOR f IN SELECT p.oid::regproc AS name, pg_get_function_arguments(p.oid) AS args,
                                   pg_get_function_result(p.oid) AS result
                              FROM pg_proc p WHERE p.proname IN ($1) LOOP
                     EXECUTE format('CREATE OR REPLACE FUNCTION %s(%s) RETURNS %s LANGUAGE sql AS %L',
                                    f.name, f.args, f.result, format('SELECT NULL::%s', f.result));
                   END LOOP;
                 END \$\$" >/dev/null
}

# The whole derive step as a no-op (circad calls circa_derive_group since 8795ad1).
bench_derive_off() {
  local fns="'circa_derive', 'circa_derive_group'"
  bench_save_functions "$fns"
  bench_noop_functions "$fns"
}

# Only the roll-ups as no-ops (daily flows, item days and use-day buckets, losses, fates, the
# monthly roll-ups and item grids their writers add since 140, and the triggers keeping interim
# days and the months on DELETE): the rest of the derived state (lives, lots and lineage,
# interim operations, corrections) is still kept, so the difference to a full run is what the
# roll-ups cost.
BENCH_ROLLUPS="'circa_rollup_add', 'circa_item_day_add', 'circa_loss_add', 'circa_item_fate_add',
               'circa_rollup_month_apply', 'circa_item_month_apply', 'circa_item_day_rows',
               'circa_item_day_apply'"
bench_rollups_off() {
  local t
  bench_save_functions "$BENCH_ROLLUPS"
  for t in rollup_day interim_event item_day; do
    echo "ALTER TABLE $t ENABLE TRIGGER USER;" >>"$BENCH_SAVED"
    bench_psql -c "ALTER TABLE $t DISABLE TRIGGER USER" >/dev/null
  done
  bench_noop_functions "$BENCH_ROLLUPS"
}

bench_derive_restore() {
  [ -s "${BENCH_SAVED:-}" ] || return 0
  bench_psql -f "$BENCH_SAVED" >/dev/null && rm -f "$BENCH_SAVED"
}
