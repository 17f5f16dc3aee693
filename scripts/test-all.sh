#!/usr/bin/env bash
# make test: the unit and integration tests on a private PostgreSQL (scripts/test.sh), the container test (docker/test.sh) and the Citus suite (tests/citus/run.sh: skipped with a SKIP line when Citus is neither installed nor installable). Each suite runs even when one before it failed; a summary of the three ends the output; exit 1 when any failed.
#   Usage: scripts/test-all.sh [postgres] [docker] [citus]   (default: all three, in this order)
# Each suite runs in the background so that an interrupt stops it by pid (each suite stops the
# clusters and processes it started itself).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=var/test-all
mkdir -p "$OUT"
SUITES=("$@")
[ ${#SUITES[@]} -eq 0 ] && SUITES=(postgres docker citus)
PID= TEE= bad=0 summary=()

stop_suite() {
  local p
  for p in $PID $TEE; do
    if kill -0 "$p" 2>/dev/null; then kill -TERM "$p"; wait "$p" 2>/dev/null || true; fi
  done
}
trap 'stop_suite; exit 130' INT
trap 'stop_suite; exit 143' TERM

# run name command…: its output goes to the terminal and to $OUT/name.out; sets rc.
run() {
  local name=$1; shift
  mkfifo "$OUT/$name.fifo" 2>/dev/null || { rm -f "$OUT/$name.fifo"; mkfifo "$OUT/$name.fifo"; }
  tee "$OUT/$name.out" <"$OUT/$name.fifo" &
  TEE=$!
  "$@" >"$OUT/$name.fifo" 2>&1 &
  PID=$!
  rc=0; wait "$PID" || rc=$?
  wait "$TEE" 2>/dev/null
  PID= TEE=
  rm -f "$OUT/$name.fifo"
}

for s in "${SUITES[@]}"; do
  case "$s" in
    postgres)
      run postgres scripts/test.sh
      line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$OUT/postgres.out" | tail -1)
      summary+=("PostgreSQL (unit + integration): ${line:-no summary (exit $rc)}") ;;
    docker)
      run docker docker/test.sh
      line=$(grep -E '^docker-test: (SKIP|FAIL|PASS|ok)' "$OUT/docker.out" | tail -1)
      [ "$rc" -eq 0 ] && ! grep -q '^docker-test: SKIP' "$OUT/docker.out" && line="passed"
      summary+=("container (docker/test.sh): ${line:-exit $rc}") ;;
    citus)
      run citus tests/citus/run.sh
      line=$(grep -E '^Citus: [0-9]+ passed, [0-9]+ failed$|^test-citus: SKIP' "$OUT/citus.out" | tail -1)
      line=${line#Citus: }
      summary+=("Citus (tests/citus/run.sh): ${line:-no summary (exit $rc)}") ;;
    *) echo "test-all: unknown suite '$s' (postgres, docker, citus)" >&2; exit 2 ;;
  esac
  [ "$rc" -eq 0 ] || { bad=1; summary[-1]+="  ← FAILED (exit $rc)"; }
done

echo
echo "== make test summary"
printf '  %s\n' "${summary[@]}"
exit "$bad"
