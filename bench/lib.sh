# bench/lib.sh — what every benchmark script shares: messages, a fresh private cluster, circad
# started and stopped by pid. Source it after setting CIRCA_DATA_DIR, CIRCA_PG_PORT, LISTEN,
# URL and LOG; it sets DATABASE_URL and CIRCAD_PID.

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
