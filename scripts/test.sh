#!/usr/bin/env bash
# Runs every test: unit tests, then integration tests against a fresh private PostgreSQL that
# this script starts (and stops, also when a test fails). Usage: scripts/test.sh [unit|integration]
#   CIRCA_BIN=bin/asan   test the sanitizer build
#   CIRCA_VALGRIND=1     run unit tests under valgrind memcheck (circad too, via the harness)
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
export CIRCA_BIN=${CIRCA_BIN:-bin}
export CIRCA_DATA_DIR=${CIRCA_TEST_DATA_DIR:-$PWD/var/test}
export CIRCA_PG_PORT=${CIRCA_TEST_PG_PORT:-54339}
export CIRCA_SCHEMA_DIR=$PWD/schema
unset DATABASE_URL
mkdir -p "$CIRCA_DATA_DIR/test-logs"

passed=0 failed=0 failed_bins=()
run_one() {
  local t=$1 log="$CIRCA_DATA_DIR/test-logs/$(basename "$t").out" wrap=()
  if [ "${CIRCA_VALGRIND:-0}" = 1 ] && [[ $t == */test_* ]] && [ "$2" = unit ]; then
    wrap=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite)
  fi
  echo "== $(basename "$t")"
  timeout 900 "${wrap[@]}" "$t" >"$log" 2>&1
  local rc=$?
  cat "$log"
  local p f
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  passed=$((passed + ${p:-0}))
  if [ "$rc" -ne 0 ]; then
    failed=$((failed + ${f:-1}))
    failed_bins+=("$(basename "$t") (exit $rc)")
  fi
}

if [ "$what" != unit ]; then
  scripts/pg.sh destroy >/dev/null 2>&1
  trap 'scripts/pg.sh stop >/dev/null 2>&1' EXIT
  scripts/pg.sh start || exit 1
  export CIRCA_TEST_DB; CIRCA_TEST_DB=$(scripts/pg.sh url)
  DATABASE_URL=$CIRCA_TEST_DB "$CIRCA_BIN/circa" migrate >/dev/null || { echo "migrate failed"; exit 1; }
fi

shopt -s nullglob
if [ "$what" != integration ]; then
  for t in tests/unit/test_*.c; do run_one "$CIRCA_BIN/tests/$(basename "$t" .c)" unit; done
fi
if [ "$what" != unit ]; then
  for t in tests/integration/test_*.c; do run_one "$CIRCA_BIN/tests/$(basename "$t" .c)" integration; done
fi

echo
[ ${#failed_bins[@]} -gt 0 ] && printf 'failed: %s\n' "${failed_bins[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
