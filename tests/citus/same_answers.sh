#!/usr/bin/env bash
# The same `circa demo` park sent to the Citus cluster (CIRCA_TEST_DB) and to a plain database on the coordinator node (no citus extension there, so 099 leaves it local and 104 keeps 009/020's report functions): every report type, the metrics and the flows must read the same on both, the monthly roll-ups on Citus must equal their daily tables regrouped, and every tenant chain verifies.
#   CITUS_DEMO_EVENTS  events of the demo (default 6000)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${CIRCA_BIN:-bin}
DB=${CIRCA_TEST_DB:?CIRCA_TEST_DB is needed (the migrated Citus coordinator)}
OUT=${CIRCA_DATA_DIR:-var/citus-test}/same-answers
EVENTS=${CITUS_DEMO_EVENTS:-6000}
YEAR=2025
PORTS=(18273 18274)
PIDS=()
mkdir -p "$OUT"
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }

cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill -TERM "$p"; wait "$p" 2>/dev/null || true; fi
  done
}
trap cleanup EXIT

# The plain database lives on the coordinator's server: a database without the extension.
PLAIN=${DB%/*}/circa_plain
psql -X -q -v ON_ERROR_STOP=1 "${DB%/*}/postgres" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS circa_plain" \
  -c "CREATE DATABASE circa_plain" >/dev/null
DATABASE_URL=$PLAIN "$BIN/circa" migrate >"$OUT/migrate-plain.log" 2>&1 || { cat "$OUT/migrate-plain.log"; fail "migrate plain"; }
[ "$(psql -X -tA "$PLAIN" -c "SELECT count(*) FROM pg_extension WHERE extname = 'citus'")" = 0 ] \
  || fail "circa_plain has the citus extension"

DBS=("$DB" "$PLAIN") NAMES=(citus plain)
TENANT=park-$$-$(date +%s)
for i in 0 1; do
  if (exec 3<>"/dev/tcp/127.0.0.1/${PORTS[$i]}") 2>/dev/null; then fail "port ${PORTS[$i]} is taken"; fi
  DATABASE_URL=${DBS[$i]} CIRCA_LISTEN=127.0.0.1:${PORTS[$i]} CIRCA_LOG=warn "$BIN/circad" 2>"$OUT/circad-${NAMES[$i]}.log" &
  PIDS+=($!)
done
for i in 0 1; do
  for _ in $(seq 300); do curl -fs -o /dev/null "http://127.0.0.1:${PORTS[$i]}/readyz" && break; sleep 0.1; done
  curl -fs -o /dev/null "http://127.0.0.1:${PORTS[$i]}/readyz" || fail "circad ${NAMES[$i]} not ready"
  key=$(DATABASE_URL=${DBS[$i]} "$BIN/circa" tenants create "$TENANT")
  "$BIN/circa" demo --url "http://127.0.0.1:${PORTS[$i]}" --key "$key" --seed 7 --events "$EVENTS" \
    --year "$YEAR" >"$OUT/demo-${NAMES[$i]}.out" 2>&1 || { tail -5 "$OUT/demo-${NAMES[$i]}.out"; fail "demo on ${NAMES[$i]}"; }
  grep -q ' rejected=0' "$OUT/demo-${NAMES[$i]}.out" || fail "demo on ${NAMES[$i]}: $(grep '^demo' "$OUT/demo-${NAMES[$i]}.out")"
done
n=$(psql -X -tA "$DB" -c "SELECT count(*) FROM event WHERE tenant_id = '$TENANT'")
[ "$n" = "$(psql -X -tA "$PLAIN" -c "SELECT count(*) FROM event WHERE tenant_id = '$TENANT'")" ] \
  || fail "the two databases hold different event counts"
ok "the demo park ($n events: items, lots, transformations, interim operations, corrections) on both"

# Each answer as jsonb text (keys sorted by jsonb); report data without its block (ledger
# hashes hold the recorded times, which differ).
answers() {
  local db=$1 t=$TENANT y=$YEAR z=$((YEAR + 1))
  psql -X -tA -v ON_ERROR_STOP=1 "$db" <<SQL
SELECT 'waste_register', circa_report_data('$t', 'waste_register', '{"from":"$y-01-01","to":"$z-01-01"}')->'data';
SELECT 'waste_register_party', circa_report_data('$t', 'waste_register', '{"from":"$y-03-01","to":"$y-09-01","party":"ACME"}')->'data';
SELECT 'waste_register_site', circa_report_data('$t', 'waste_register', '{"from":"$y-01-01","to":"$z-01-01","site":"PW-YARD"}')->'data';
SELECT 'prtr_transfers', circa_report_data('$t', 'prtr_transfers', '{"from":"$y-01-01","to":"$z-01-01"}')->'data';
SELECT 'circularity_summary', circa_report_data('$t', 'circularity_summary', '{"from":"$y-01-01","to":"$z-01-01"}')->'data';
SELECT 'recovery_certificate', circa_report_data('$t', 'recovery_certificate', '{"from":"$y-01-01","to":"$z-01-01","generator":"PARKWASTE","recycler":"GREENCYCLE"}')->'data';
SELECT 'recovery_certificate_any', circa_report_data('$t', 'recovery_certificate', '{"from":"$y-01-01","to":"$z-01-01","generator":"ACME"}')->'data';
SELECT 'metrics', circa_metrics('$t', '$y-01-01', '$z-01-01', NULL, NULL, NULL, NULL) - 'block';
SELECT 'flows', circa_flows('$t', '$y-01-01', '$z-01-01', NULL, NULL, NULL, NULL) - 'block';
SELECT 'consignments', jsonb_agg(to_jsonb(c) - 'seq' - 'valid_from' ORDER BY c.event_id)
  FROM consignment c WHERE c.tenant_id = '$t' AND c.valid_to IS NULL;
SQL
}
answers "$DB" >"$OUT/citus.txt" || fail "reading the answers on Citus"
answers "$PLAIN" >"$OUT/plain.txt" || fail "reading the answers on plain PostgreSQL"
# Compared in the plain database: the same documents, numbers equal to 1e-9 relative (sums of
# fractional kg depend on the order rows were added: group commits batch differently per run,
# and plain PostgreSQL adds whole months from rollup_month since 110).
cmp_sql() {
  cat <<'SQL'
CREATE FUNCTION pg_temp.near(a jsonb, b jsonb) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    k text;
    i int;
BEGIN
    IF jsonb_typeof(a) IS DISTINCT FROM jsonb_typeof(b) THEN
        RETURN false;
    ELSIF jsonb_typeof(a) = 'number' THEN
        RETURN abs(a::numeric - b::numeric) <= 1e-9 * greatest(abs(a::numeric), abs(b::numeric), 1);
    ELSIF jsonb_typeof(a) = 'object' THEN
        -- A key on one side only must hold a residue: a sum of kg that came out exactly 0 in
        -- one order of addition is left out, 1e-12 in another order is shown.
        FOR k IN SELECT x FROM jsonb_object_keys(a || b) x LOOP
            IF a ? k AND b ? k THEN
                IF NOT pg_temp.near(a->k, b->k) THEN RETURN false; END IF;
            ELSIF jsonb_typeof(coalesce(a->k, b->k)) <> 'number'
                  OR abs(coalesce(a->k, b->k)::numeric) > 1e-6 THEN
                RETURN false;
            END IF;
        END LOOP;
        RETURN true;
    ELSIF jsonb_typeof(a) = 'array' THEN
        IF jsonb_array_length(a) <> jsonb_array_length(b) THEN RETURN false; END IF;
        FOR i IN 0 .. jsonb_array_length(a) - 1 LOOP
            IF NOT pg_temp.near(a->i, b->i) THEN RETURN false; END IF;
        END LOOP;
        RETURN true;
    END IF;
    RETURN a = b;
END $$;
CREATE TEMP TABLE ans (side text, line text);
SQL
  for side in citus plain; do
    echo "COPY ans (line) FROM STDIN WITH (FORMAT csv, DELIMITER E'\x01', QUOTE E'\x02');"
    cat "$OUT/$side.txt"; echo '\.'
    echo "UPDATE ans SET side = '$side' WHERE side IS NULL;"
  done
  cat <<'SQL'
SELECT p.name, CASE WHEN c.doc IS NULL THEN 'missing on Citus'
                    WHEN pg_temp.near(c.doc, p.doc) THEN 'same' ELSE 'differs' END
  FROM (SELECT split_part(line, '|', 1) AS name, substr(line, strpos(line, '|') + 1)::jsonb AS doc
          FROM ans WHERE side = 'plain') p
  LEFT JOIN (SELECT split_part(line, '|', 1) AS name, substr(line, strpos(line, '|') + 1)::jsonb AS doc
               FROM ans WHERE side = 'citus') c ON c.name = p.name
 ORDER BY 1;
SQL
}
cmp_sql | psql -X -q -tA -v ON_ERROR_STOP=1 "$PLAIN" >"$OUT/compare.txt" || fail "comparing the answers"
cat "$OUT/compare.txt"
[ "$(grep -c '|same$' "$OUT/compare.txt")" = 10 ] \
  || fail "$(grep -vc '|same$' "$OUT/compare.txt") of 10 answers differ between Citus and plain PostgreSQL (files in $OUT)"
ok "10 answers (4 report types, scoped by party and site, metrics, flows, the current consignments) the same on Citus and plain PostgreSQL"

# On Citus the roll-ups of 110–115 are kept by triggers on the shards (130_citus_month_rollups):
# each must equal its daily table regrouped (rows of another sum or missing are counted).
off=$(psql -X -tA -v ON_ERROR_STOP=1 "$DB" <<SQL
SELECT count(*) FROM (
  SELECT tenant_id, date_trunc('month', day::timestamp)::date AS month, site, counterpart,
         material, product, type, operation, ewc, hazardous, sum(kg) AS kg, sum(events) AS events
    FROM rollup_day WHERE tenant_id = '$TENANT' GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10) d
  FULL JOIN (SELECT * FROM rollup_month WHERE tenant_id = '$TENANT') m
       USING (tenant_id, month, site, counterpart, material, product, type, operation, ewc, hazardous)
 WHERE abs(coalesce(d.kg, 0) - coalesce(m.kg, 0)) > 1e-6 OR coalesce(d.events, 0) <> coalesce(m.events, 0);
SELECT count(*) FROM (
  SELECT tenant_id, kind, date_trunc('month', day::timestamp)::date AS m1,
         date_trunc('month', d2::timestamp)::date AS m2, date_trunc('month', d3::timestamp)::date AS m3,
         product, v, sum(n) AS n FROM item_day WHERE tenant_id = '$TENANT' AND kind <> 'E'
   GROUP BY 1, 2, 3, 4, 5, 6, 7) d
  FULL JOIN (SELECT * FROM item_month WHERE tenant_id = '$TENANT') m USING (tenant_id, kind, m1, m2, m3, product, v)
 WHERE coalesce(d.n, 0) <> coalesce(m.n, 0);
SELECT count(*) FROM (
  SELECT tenant_id, day, product, floor(v) AS b, sum(n) AS n FROM item_day
   WHERE tenant_id = '$TENANT' AND kind = 'E' GROUP BY 1, 2, 3, 4) d
  FULL JOIN (SELECT * FROM use_day_daily WHERE tenant_id = '$TENANT') y USING (tenant_id, day, product, b)
 WHERE coalesce(d.n, 0) <> coalesce(y.n, 0);
SELECT count(*) FROM interim_day WHERE tenant_id = '$TENANT';
SQL
) || fail "reading the roll-ups on Citus"
read -r bad_month bad_item bad_daily interim <<<"$(echo $off)"
[ "$bad_month" = 0 ] && [ "$bad_item" = 0 ] && [ "$bad_daily" = 0 ] && [ "$interim" -gt 0 ] \
  || fail "Citus roll-ups off: rollup_month $bad_month, item_month $bad_item, use_day_daily $bad_daily rows; interim_day $interim rows"
ok "on Citus rollup_month, item_month and use_day_daily equal their daily tables regrouped ($interim interim_day rows)"

for i in 0 1; do
  DATABASE_URL=${DBS[$i]} "$BIN/circa" verify --tenant "$TENANT" >"$OUT/verify-${NAMES[$i]}.out" 2>&1 \
    || { cat "$OUT/verify-${NAMES[$i]}.out"; fail "chain on ${NAMES[$i]}"; }
done
ok "the park's chain verifies on both"
for i in 0 1; do kill -TERM "${PIDS[$i]}"; wait "${PIDS[$i]}" || fail "circad ${NAMES[$i]} exited non-zero"; done
PIDS=()
psql -X -q "${DB%/*}/postgres" -c "DROP DATABASE circa_plain" >/dev/null
