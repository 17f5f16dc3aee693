#!/usr/bin/env bash
# make test-citus (and the last part of make test): circa's integration tests against a three-node Citus cluster (scripts/citus.sh), a second circad writing the same tenants, a demo park compared with plain PostgreSQL, `circa verify` on every tenant, EXPLAIN checks that ingest and metrics statements are router plans, and one-phase ingest commits.
#   CITUS_TESTS          integration tests to run (default: ingest, idempotency, master data, metrics, lineage, MCI, ledger verify, reports, schedules)
#   CIRCA_CITUS_SO       the library that says Citus is installed (default: $(pg_config --pkglibdir)/citus.so)
#   CIRCA_CITUS_INSTALL  run (as root) when it is missing (default: ../shared/tools/citus-install.sh beside the checkout)
# The last line is "Citus: N passed, M failed" (exit 1 when M > 0), or "test-citus: SKIP: why"
# (exit 0) when Citus is not installed and cannot be. Every process a step starts is stopped
# by pid (each step script's own trap; this script's trap stops the running step and the
# cluster), also when a test fails or the run is interrupted.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
SO=${CIRCA_CITUS_SO:-$(pg_config --pkglibdir 2>/dev/null)/citus.so}
INSTALL=${CIRCA_CITUS_INSTALL:-$ROOT/../shared/tools/citus-install.sh}
export CIRCA_BIN=${CIRCA_BIN:-bin}
export CIRCA_DATA_DIR=$ROOT/var/citus-test
export CIRCA_CITUS_DIR=$ROOT/var/citus
export CIRCA_SCHEMA_DIR=$ROOT/schema
unset DATABASE_URL CIRCA_PG_PORT
TESTS=${CITUS_TESTS:-"test_api_ingest test_api_md test_metrics test_lifecycle test_mci test_ledger_verify test_reports test_schedule"}
STEP_PID= cluster=0 passed=0 failed=0 failed_bins=()

say() { printf 'test-citus: %s\n' "$*"; }
skip() { say "SKIP: $*"; exit 0; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$STEP_PID" ] && kill -0 "$STEP_PID" 2>/dev/null; then
    kill -TERM "$STEP_PID"; wait "$STEP_PID" 2>/dev/null || true
  fi
  [ "$cluster" = 1 ] && { scripts/citus.sh stop >/dev/null 2>&1 || true; }
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs one step in the background (so cleanup can stop it by pid), output into log; sets rc.
step() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  STEP_PID=$!
  rc=0; wait "$STEP_PID" || rc=$?
  STEP_PID=
}
count() {   # name: one check passed when rc is 0
  if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_bins+=("$1 (exit $rc)"); fi
}
finish() {
  echo
  [ ${#failed_bins[@]} -gt 0 ] && printf 'failed: %s\n' "${failed_bins[@]}"
  echo "Citus: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}

rm -rf "$CIRCA_DATA_DIR"; mkdir -p "$CIRCA_DATA_DIR/test-logs"
if [ ! -f "$SO" ]; then
  [ -f "$INSTALL" ] || skip "Citus is not installed ($SO is missing) and $INSTALL does not exist"
  [ "$(id -u)" -eq 0 ] || skip "Citus is not installed and $INSTALL needs root"
  say "installing Citus with $INSTALL (about 4 minutes)"
  step "$CIRCA_DATA_DIR/install.log" bash "$INSTALL"
  cat "$CIRCA_DATA_DIR/install.log"
  [ "$rc" -eq 0 ] && [ -f "$SO" ] || { count "citus-install.sh"; finish; }
fi

# The cluster, migrated with `circa migrate` (it stops at the first file that fails on Citus).
echo "== cluster and circa migrate (Citus)"
scripts/citus.sh destroy >/dev/null 2>&1 || true
cluster=1
step "$CIRCA_DATA_DIR/start.log" scripts/citus.sh start
cat "$CIRCA_DATA_DIR/start.log"
[ "$rc" -eq 0 ] || { count "cluster start"; finish; }
export CIRCA_TEST_DB; CIRCA_TEST_DB=$(scripts/citus.sh url)
step "$CIRCA_DATA_DIR/migrate.log" env DATABASE_URL="$CIRCA_TEST_DB" "$CIRCA_BIN/circa" migrate
[ "$rc" -eq 0 ] || { grep -v '^applied' "$CIRCA_DATA_DIR/migrate.log"; count "migrate"; finish; }
q() { scripts/citus.sh psql -v ON_ERROR_STOP=1 -tAq "$@"; }
files=$(find schema -maxdepth 1 -name '[0-9]*_*.sql' | wc -l)
applied=$(q -c "SELECT count(*) FROM schema_version")
dist=$(q -c "SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'h'")
echo "$applied of $files migrations applied; $dist tables distributed by tenant_id"
[ "$applied" -eq "$files" ] && [ "$dist" -ge 10 ]; rc=$?
count "migrate"

for t in $TESTS; do
  log=$CIRCA_DATA_DIR/test-logs/$t.out
  echo "== $t (Citus)"
  step "$log" timeout 900 "$CIRCA_BIN/tests/$t"
  grep -E '^\[  (PASSED|FAILED) |^\[  ERROR   \]|^ERROR' "$log" | head -40
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  passed=$((passed + ${p:-0}))
  if [ "$rc" -ne 0 ]; then failed=$((failed + ${f:-1})); failed_bins+=("$t (exit $rc)"); fi
done

# Scripts of one check each: two circad processes writing one tenant at once; a demo park on
# Citus and on a plain database (the same reports, metrics and flows).
for s in two_daemons same_answers; do
  echo "== $s (Citus)"
  step "$CIRCA_DATA_DIR/test-logs/$s.out" "tests/citus/$s.sh"
  cat "$CIRCA_DATA_DIR/test-logs/$s.out"
  count "$s"
done

# Every tenant's chain verifies.
echo "== circa verify on every tenant"
nt=0 nbad=0
for tenant in $(q -c "SELECT id FROM tenant ORDER BY id"); do
  nt=$((nt + 1))
  if ! DATABASE_URL=$CIRCA_TEST_DB "$CIRCA_BIN/circa" verify --tenant "$tenant" >"$CIRCA_DATA_DIR/verify.out" 2>&1; then
    nbad=$((nbad + 1)); say "verify $tenant failed:"; cat "$CIRCA_DATA_DIR/verify.out"
  fi
done
echo "$nt tenants verified, $nbad broken"
[ "$nbad" -eq 0 ] && [ "$nt" -gt 0 ]; rc=$?
count "verify"

# Router plans: each statement of an ingest group and of GET /v1/metrics touches one shard.
echo "== router plans"
tenant=$(q -c "SELECT tenant_id FROM event GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
plan_ok=1
check_plan() {
  local name=$1 sql=$2 out
  out=$(q -c "SET citus.explain_all_tasks = off" -c "EXPLAIN $sql" 2>&1) || { say "$name: $out"; plan_ok=0; return; }
  if grep -q "Task Count: 1$" <<<"$out" && ! grep -q "Task Count: [02-9]" <<<"$out"; then
    echo "router  $name"
  else
    echo "NOT ROUTER  $name"; echo "$out"; plan_ok=0
  fi
}
check_plan ingest_check "SELECT i, same, block_hash FROM circa_existing('$tenant', ARRAY['x'], ARRAY['\\x00'::bytea])"
# circa_ingest_rows on Citus (105_citus_one_phase.sql): the group's events as one INSERT … VALUES.
check_plan ingest_rows "INSERT INTO event (tenant_id, block_seq, recorded_time, id, seq, type, event_time, time_raw, canon) VALUES ('$tenant', 1, now(), 'x', 1, 'observed', now(), 'x', '\\x00'), ('$tenant', 1, now(), 'y', 2, 'observed', now(), 'x', '\\x00')"
# circa_derive_group is not delegated (a writer, see 099_citus.sql): it runs on the coordinator
# and its statements carry tenant_id = p_tenant; EXPLAIN cannot see inside it.
check_plan ingest_block "INSERT INTO ledger_block (tenant_id, seq, count, prev, root, time, hash) VALUES ('$tenant', 1, 1, 'p', 'r', 't', 'h')"
check_plan event_by_id "SELECT canon FROM event WHERE tenant_id = '$tenant' AND id = 'x'"
check_plan metrics "SELECT circa_metrics('$tenant', NULL, NULL, NULL, NULL, NULL, NULL)"
check_plan rollups "SELECT sum(kg) FROM rollup_day WHERE tenant_id = '$tenant'"
# 098_citus_compat.sql: the chain head lives in tenant_head, co-located with event.
if [ "$(q -c "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'tenant_head'::regclass")" = 1 ]; then
  check_plan ingest_head "UPDATE tenant_head SET head_seq = 1, head_hash = 'h' WHERE tenant_id = '$tenant' AND head_seq = 0 AND head_hash = 'x'"
  check_plan head_read "SELECT head_seq, head_hash FROM tenant_head WHERE tenant_id = '$tenant'"
else
  echo "NOT ROUTER  ingest_head (no distributed tenant_head)"; plan_ok=0
fi
[ "$plan_ok" -eq 1 ]; rc=$?
count "router plans"

# An ingest transaction writes to one worker only: demo events (items, lots, transformations,
# interim operations, corrections) committed group by group with circad's statements, no
# PREPARE TRANSACTION, one worker per group.
echo "== ingest commits on one node (Citus)"
step "$CIRCA_DATA_DIR/test-logs/one_phase.out" tests/citus/one_phase.sh
cat "$CIRCA_DATA_DIR/test-logs/one_phase.out"
count "one node per ingest"
finish
