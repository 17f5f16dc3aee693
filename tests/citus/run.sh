#!/usr/bin/env bash
# make test-citus: circa's integration tests against a three-node Citus cluster (scripts/citus.sh), a second circad writing the same tenants, `circa verify` on every tenant, and EXPLAIN checks that ingest and metrics statements are router plans.
#   CITUS_TESTS  integration tests to run (default: ingest, idempotency, master data, metrics, lineage, MCI, ledger verify, reports, schedules)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
INSTALL=$ROOT/../shared/tools/citus-install.sh
export CIRCA_BIN=${CIRCA_BIN:-bin}
export CIRCA_DATA_DIR=$ROOT/var/citus-test
export CIRCA_CITUS_DIR=$ROOT/var/citus
export CIRCA_SCHEMA_DIR=$ROOT/schema
unset DATABASE_URL CIRCA_PG_PORT
TESTS=${CITUS_TESTS:-"test_api_ingest test_api_md test_metrics test_lifecycle test_mci test_ledger_verify test_reports test_schedule"}
D2_PID=

say() { printf 'test-citus: %s\n' "$*" >&2; }

if [ ! -f "$(pg_config --pkglibdir 2>/dev/null)/citus.so" ]; then
  if [ -x "$INSTALL" ] && [ "$(id -u)" -eq 0 ]; then
    say "installing Citus with $INSTALL (about 4 minutes)"
    "$INSTALL"
  else
    echo "SKIP test-citus: citus.so is not installed and $INSTALL is missing or needs root"
    exit 0
  fi
fi

cleanup() {
  local rc=$?
  if [ -n "$D2_PID" ] && kill -0 "$D2_PID" 2>/dev/null; then
    kill -TERM "$D2_PID"; wait "$D2_PID" 2>/dev/null || true
  fi
  scripts/citus.sh stop >/dev/null 2>&1 || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$CIRCA_DATA_DIR"; mkdir -p "$CIRCA_DATA_DIR/test-logs"
scripts/citus.sh destroy >/dev/null 2>&1 || true
scripts/citus.sh start
export CIRCA_TEST_DB; CIRCA_TEST_DB=$(scripts/citus.sh url)
DATABASE_URL=$CIRCA_TEST_DB "$CIRCA_BIN/circa" migrate >"$CIRCA_DATA_DIR/migrate.log" 2>&1 \
  || { cat "$CIRCA_DATA_DIR/migrate.log"; exit 1; }
q() { scripts/citus.sh psql -v ON_ERROR_STOP=1 -tAq "$@"; }
dist=$(q -c "SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'h'")
say "schema migrated; $dist tables distributed by tenant_id"
[ "$dist" -ge 10 ] || { say "099_citus.sql distributed only $dist tables"; exit 1; }

passed=0 failed=0 failed_bins=()
# `circa migrate` applied every file of schema/ (it stops at the first that fails on Citus).
echo "== circa migrate (Citus)"
files=$(find schema -maxdepth 1 -name '[0-9]*_*.sql' | wc -l)
applied=$(q -c "SELECT count(*) FROM schema_version")
echo "$applied of $files migrations applied"
if [ "$applied" -eq "$files" ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_bins+=("migrate"); fi
for t in $TESTS; do
  log=$CIRCA_DATA_DIR/test-logs/$t.out
  echo "== $t (Citus)"
  rc=0; timeout 900 "$CIRCA_BIN/tests/$t" >"$log" 2>&1 || rc=$?
  grep -E '^\[  (PASSED|FAILED) |^\[  ERROR   \]|^ERROR' "$log" | head -40 || true
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  passed=$((passed + ${p:-0}))
  if [ "$rc" -ne 0 ]; then failed=$((failed + ${f:-1})); failed_bins+=("$t (exit $rc)"); fi
done

# Two circad processes writing the same tenants at once.
echo "== two daemons (Citus)"
rc=0; tests/citus/two_daemons.sh >"$CIRCA_DATA_DIR/test-logs/two_daemons.out" 2>&1 || rc=$?
cat "$CIRCA_DATA_DIR/test-logs/two_daemons.out"
if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_bins+=("two_daemons (exit $rc)"); fi

# A demo park on Citus and on a plain database: the same reports, metrics and flows.
echo "== same answers as plain PostgreSQL (Citus)"
rc=0; tests/citus/same_answers.sh >"$CIRCA_DATA_DIR/test-logs/same_answers.out" 2>&1 || rc=$?
cat "$CIRCA_DATA_DIR/test-logs/same_answers.out"
if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_bins+=("same_answers (exit $rc)"); fi

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
if [ "$nbad" -eq 0 ] && [ "$nt" -gt 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_bins+=("verify"); fi

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
if [ "$plan_ok" -eq 1 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_bins+=("router plans"); fi

# An ingest transaction writes to one worker only: demo events (items, lots, transformations,
# interim operations, corrections) committed group by group with circad's statements, no
# PREPARE TRANSACTION, one worker per group.
echo "== ingest commits on one node (Citus)"
rc=0; tests/citus/one_phase.sh >"$CIRCA_DATA_DIR/test-logs/one_phase.out" 2>&1 || rc=$?
cat "$CIRCA_DATA_DIR/test-logs/one_phase.out"
if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_bins+=("one node per ingest (exit $rc)"); fi

echo
[ ${#failed_bins[@]} -gt 0 ] && printf 'failed: %s\n' "${failed_bins[@]}"
echo "Citus: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
