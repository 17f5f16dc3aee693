#!/usr/bin/env bash
# Ingest commits on one node: a `circa demo` park's events (items, lots, transformations, interim operations, corrections, shipments and receipts) are committed again into a second tenant, group by group, with circad's statements on Citus (ingest_head, ingest_rows, ingest_block, ingest_derive), and psql with citus.log_remote_commands must see no PREPARE TRANSACTION (two-phase commit) and one worker per group.
#   CITUS_ONE_PHASE_EVENTS  events of the demo (default 3000)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${CIRCA_BIN:-bin}
DB=${CIRCA_TEST_DB:?CIRCA_TEST_DB is needed (the migrated Citus coordinator)}
OUT=${CIRCA_DATA_DIR:-var/citus-test}/one-phase
EVENTS=${CITUS_ONE_PHASE_EVENTS:-3000}
PORT=18275
PID=
mkdir -p "$OUT"
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }
cleanup() { if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; fi; }
trap cleanup EXIT
q() { psql -X -q -tA -v ON_ERROR_STOP=1 "$DB" "$@"; }

# The source park (P) through circad; the target (Q) gets the same master data and one event.
# circad's connections log every remote command Citus issues (its notices, at info level); the
# options replace circad's own, so plan_cache_mode is given again.
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then fail "port $PORT is taken"; fi
opts='options=-c%20plan_cache_mode%3Dforce_custom_plan%20-c%20citus.log_remote_commands%3Don'
DATABASE_URL="$DB?$opts" CIRCA_LISTEN=127.0.0.1:$PORT CIRCA_LOG=info "$BIN/circad" 2>"$OUT/circad.log" &
PID=$!
for _ in $(seq 300); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz" && break; sleep 0.1; done
P=onep-$$-$(date +%s) Q=oneq-$$-$(date +%s)
for t in "$P" "$Q"; do
  key=$(DATABASE_URL=$DB "$BIN/circa" tenants create "$t")
  n=$EVENTS seed=5; [ "$t" = "$Q" ] && n=1 seed=99
  "$BIN/circa" demo --url "http://127.0.0.1:$PORT" --key "$key" --seed "$seed" --events "$n" \
    --year 2025 >"$OUT/demo-$t.out" 2>&1 || { tail -5 "$OUT/demo-$t.out"; fail "demo into $t"; }
done
kill -TERM "$PID"; wait "$PID" || fail "circad exited non-zero"; PID=
# circad's own commits: a PREPARE TRANSACTION is only allowed in a transaction that wrote
# api_key (the key's last_used_at, a reference table: every node, once per key per 5 s).
read -r prep keyprep < <(awk '
  /postgres says: NOTICE:  issuing/ {
    c = $0; sub(/.*store conn /, "", c); sub(/:.*/, "", c)
    if ($0 ~ /api_key/) key[c] = 1
    if ($0 ~ /issuing PREPARE TRANSACTION/) { if (key[c]) k++; else p++ }
    if ($0 ~ /issuing (COMMIT|ROLLBACK)/) key[c] = 0
  }
  END { print p + 0, k + 0 }' "$OUT/circad.log")
grep -q 'issuing' "$OUT/circad.log" || fail "circad logged no remote commands"
[ "$prep" = 0 ] || fail "circad committed in two phases $prep times outside api_key writes (see $OUT/circad.log)"
ok "circad stored the park with 0 two-phase commits (api_key touches: $keyprep prepared placements)"

# The replay script: groups of P's events in seq order, alternately 150 and 600 events, each
# committed as circad commits a group on Citus (no COPY there: see 105_citus_one_phase.sql).
# Head hashes are made up ('g' || seq): circa_advance_head only compares them.
read -r base head < <(q -F' ' -c "SELECT head_seq, head_hash FROM circa_head('$Q')")
# Generated on the coordinator from local copies (temp tables): plain PostgreSQL, no shard.
q >"$OUT/replay.sql" <<SQL
SET client_min_messages = error;
CREATE TEMP TABLE pe AS SELECT * FROM event WHERE tenant_id = '$P';
CREATE TEMP TABLE iop AS SELECT code FROM rd_operation WHERE category = 'interim';
WITH c AS (SELECT x.*, x.seq + $base AS nseq,
                  (x.seq - 1) / 750 * 2 + CASE WHEN (x.seq - 1) % 750 < 150 THEN 0 ELSE 1 END AS grp
             FROM pe x),
g AS (SELECT c.grp, min(c.nseq) AS first, max(c.nseq) AS last,
             bit_or(CASE WHEN c.type = 'transformed' THEN 1 ELSE 0 END
                    | CASE WHEN c.lot IS NOT NULL THEN 2 ELSE 0 END
                    | CASE WHEN c.item IS NOT NULL THEN 4 ELSE 0 END
                    | CASE WHEN c.type = 'corrected' THEN 8 ELSE 0 END
                    | CASE WHEN c.operation IN (SELECT code FROM iop) THEN 16 ELSE 0 END
                    | CASE WHEN c.type IN ('shipped', 'collected', 'received') THEN 32 ELSE 0 END) AS kinds
        FROM c GROUP BY c.grp)
SELECT format(E'\\\\warn group %s events %s kinds %s\nBEGIN;\nSELECT circa_advance_head(%L, %s, %L, %s, %L);\n',
              g.grp, g.last - g.first + 1, g.kinds, '$Q', g.first - 1,
              CASE WHEN g.first - 1 = $base THEN '$head' ELSE 'g' || (g.first - 1) END,
              g.last, 'g' || g.last)
       || (SELECT format(E'EXECUTE ingest_rows(%L, %s, %L, %L, %L, %L, %L, %L, %L, %L, %L, %L, %L, %L, %L, %L, %L, %L, %L, %L, %L, %L);\n',
                  '$Q', g.last, array_agg(c.id ORDER BY c.seq), array_agg(c.nseq ORDER BY c.seq),
                  array_agg(c.type ORDER BY c.seq), array_agg(c.event_time ORDER BY c.seq),
                  array_agg(c.time_raw ORDER BY c.seq), array_agg(c.site ORDER BY c.seq),
                  array_agg(c.from_site ORDER BY c.seq), array_agg(c.to_site ORDER BY c.seq),
                  array_agg(c.material ORDER BY c.seq), array_agg(c.ewc ORDER BY c.seq),
                  array_agg(c.operation ORDER BY c.seq), array_agg(c.quantity_kg ORDER BY c.seq),
                  array_agg(c.item ORDER BY c.seq), array_agg(c.lot ORDER BY c.seq),
                  array_agg(c.product ORDER BY c.seq), array_agg(c.corrects ORDER BY c.seq),
                  array_agg(c.canon ORDER BY c.seq), array_agg(c.value_amount ORDER BY c.seq),
                  array_agg(c.currency ORDER BY c.seq),
                  array_agg(nullif(array_to_string(c.flags, ','), '') ORDER BY c.seq))
             FROM c WHERE c.grp = g.grp)
       || format(E'INSERT INTO ledger_block (tenant_id, seq, count, prev, root, time, hash) VALUES (%L, %s, %s, %L, %L, %L, %L);\n',
                 '$Q', g.last, g.last - g.first + 1, 'g' || (g.first - 1), 'r', 't', 'g' || g.last)
       || format(E'SELECT circa_derive_group(%L, %s, %s, %s);\nCOMMIT;\n', '$Q', g.first, g.last, g.kinds)
  FROM g ORDER BY g.grp;
SQL
[ -s "$OUT/replay.sql" ] || fail "no replay script"

# circad's prepared statement on Citus (daemon/ingest.c, ingest_rows), then the groups; every
# remote command Citus issues is a NOTICE on psql's stderr.
{
  cat <<'SQL'
PREPARE ingest_rows (text, int8, text[], int8[], text[], timestamptz[], text[], text[], text[],
                     text[], text[], text[], text[], float8[], text[], text[], text[], text[],
                     bytea[], float8[], text[], text[]) AS
SELECT circa_ingest_rows($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                         $17, $18, $19, $20, $21, $22);
SET plan_cache_mode = force_custom_plan;
SET citus.log_remote_commands = on;
SQL
  cat "$OUT/replay.sql"
} | psql -X -q -v ON_ERROR_STOP=1 "$DB" >"$OUT/replay.out" 2>"$OUT/replay.log" \
  || { tail -20 "$OUT/replay.log"; fail "the replay failed"; }

stored=$(q -c "SELECT count(*) FROM event WHERE tenant_id = '$Q'")
sent=$(q -c "SELECT count(*) FROM event WHERE tenant_id = '$P'")
[ "$stored" = $((sent + base)) ] || fail "$stored events in $Q, want $((sent + base))"
# Per group (psql's \warn line "group N events E kinds K" starts it): the workers its remote
# commands went to, and its PREPARE TRANSACTIONs.
awk '/^group / { g = $2; ev[g] = $4; k[g] = $6; n = g }
     /^NOTICE:  issuing PREPARE TRANSACTION/ { p[g]++ }
     /^DETAIL:  on server/ { if (!((g, $4) in s)) { s[g, $4] = 1; w[g]++ } }
     END { for (i = 0; i <= n; i++) print i, ev[i], k[i], w[i] + 0, p[i] + 0 }' \
  "$OUT/replay.log" >"$OUT/groups.txt"
echo "group events kinds workers two-phase-commits"
cat "$OUT/groups.txt"
groups=$(wc -l <"$OUT/groups.txt")
prepared=$(awk '{ s += $5 } END { print s + 0 }' "$OUT/groups.txt")
multi=$(awk '$4 > 1' "$OUT/groups.txt" | wc -l)
kinds=0
while read -r _ _ k _ _; do kinds=$((kinds | k)); done <"$OUT/groups.txt"
[ "$kinds" = 63 ] || fail "the groups covered derive kinds $kinds, not all of 1|2|4|8|16|32"
[ "$prepared" = 0 ] || fail "$prepared PREPARE TRANSACTION in $groups group commits (see $OUT/replay.log)"
[ "$multi" = 0 ] || fail "$multi of $groups group commits sent commands to more than one worker"
ok "$groups group commits of $sent demo events (all derive kinds): one worker each, 0 two-phase commits"
