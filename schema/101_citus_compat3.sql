-- Citus compatibility, third part (docs/SCALING.md). Runs everywhere, after 100_citus_compat2.sql,
-- with the same results on plain PostgreSQL (one code path, so `make test` checks it too):
--   circa_flows (007)  its one big statement (WITH x AS (SELECT * FROM circa_rollups_in(…)) …
--       JOIN site …) is a router query that Citus ships whole to the tenant's shard; there
--       circa_rollups_in (plpgsql since 098, RETURN QUERY over rollup_day and site) runs a
--       distributed query of its own: "cannot execute a distributed query from a query on a
--       shard", GET /v1/flows answered 500 (XX000). The period's roll-ups are now read first,
--       into a circa_rollup_row[] (as circa_metrics does since 019), and x reads unnest() of it.
--   circa_schedule_claim, circa_delivery_claim (017)  circad's timer claims over all tenants
--       with one SELECT … FOR UPDATE SKIP LOCKED; Citus refuses row locks in a query over many
--       shards ("could not run distributed query with FOR UPDATE/SHARE commands"), so schedules
--       and deliveries never ran on a cluster. Now: the candidates are read without a lock (a
--       plain multi-shard SELECT), then each is locked by its key with FOR UPDATE SKIP LOCKED
--       and its condition checked again (a router query on the tenant's shard), until p_limit
--       are claimed. The tables stay distributed by tenant_id (no reference tables: every
--       write of a run or a delivery would then commit on every node in two phases). Two
--       claimers still never take the same row: the second skips it while it is locked, and
--       after the first commits the re-check sees its lease.
--   circa_schedule_list (017)  jsonb_agg(circa_schedule_json(s)) passes the whole row; shipped to
--       a shard that row has the shard's type ("function circa_schedule_json(schedule_102684)
--       does not exist": GET /v1/schedules answered 500). The rows are read first, then
--       circa_schedule_json is called per row in plpgsql.
-- The rewrites check that the function still has the shape it was written for (a migration
-- before this one may have redefined it) and warns otherwise instead of replacing newer code.
DO $compat3$
DECLARE
    v_def text;
    v_new text;
    v_step text;
    v_ok boolean := true;
    v_citus boolean := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus');
BEGIN
    IF v_citus THEN
        -- Function DDL goes to every node over one connection each, in this transaction.
        SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
    END IF;

    -- circa_flows: three edits of its text; each must match once, or nothing is replaced.
    SELECT pg_get_functiondef(p.oid) INTO v_def
      FROM pg_proc p
     WHERE p.oid = to_regprocedure('circa_flows(text,text,text,text,text,text,text)');
    v_new := v_def;
    IF v_new IS NULL OR to_regtype('circa_rollup_row') IS NULL THEN
        v_ok := false;
    END IF;
    IF v_ok THEN   -- the array, declared
        v_step := regexp_replace(v_new, 'DECLARE\s+d record;',
                                 E'DECLARE\n    d record;\n    v_rollups circa_rollup_row[];');
        v_ok := v_step <> v_new;
        v_new := v_step;
    END IF;
    IF v_ok THEN   -- the period's roll-ups, read before the statement
        v_step := regexp_replace(v_new, 'd := circa_days\(p_tenant, p_from, p_to\);',
            E'd := circa_days(p_tenant, p_from, p_to);\n' ||
            E'    -- Read first (Citus: see 101_citus_compat3.sql), then joined from unnest().\n' ||
            E'    v_rollups := ARRAY(SELECT ROW(r.*)::circa_rollup_row\n' ||
            E'                         FROM circa_rollups_in(p_tenant, d.from_day, d.to_day, p_party, p_site,\n' ||
            E'                                               p_material, p_product) r);');
        v_ok := v_step <> v_new;
        v_new := v_step;
    END IF;
    IF v_ok THEN   -- x reads the array
        v_step := regexp_replace(v_new,
            'SELECT \* FROM circa_rollups_in\(p_tenant, d\.from_day, d\.to_day, p_party, p_site,\s+'
            'p_material, p_product\) WHERE mp_ok',
            'SELECT * FROM unnest(v_rollups) WHERE mp_ok');
        v_ok := v_step <> v_new;
        v_new := v_step;
    END IF;
    IF v_ok AND v_new !~ 'circa_rollups_in\(p_tenant, d\.from_day' THEN
        v_ok := false;
    END IF;
    IF v_ok THEN
        EXECUTE v_new;
    ELSE
        RAISE WARNING '101_citus_compat3: circa_flows has changed; it was not rewritten';
    END IF;

    -- circa_schedule_claim: candidates unlocked, then locked one by one by key.
    IF (SELECT p.prosrc ~ 'FOR UPDATE OF sc SKIP LOCKED LIMIT p_limit'
                   AND p.prosrc ~ 'FOR UPDATE SKIP LOCKED LIMIT p_limit\),'
                   AND p.prosrc ~ 'WHILE n < 100 AND circa_schedule_due\(v_from, s\.every, s\.due_after, s\.time_zone\) <= now\(\) LOOP'
                   AND p.prosrc ~ 'UPDATE schedule_run r SET claimed_by = p_owner, lease_until = now\(\) \+ p_lease'
          FROM pg_proc p
         WHERE p.oid = to_regprocedure('circa_schedule_claim(text,interval,integer)')) THEN
        CREATE OR REPLACE FUNCTION circa_schedule_claim(p_owner text, p_lease interval, p_limit int)
        RETURNS TABLE (tenant_id text, schedule_id text, type text, params jsonb,
                       period_from date, period_to date)
        LANGUAGE plpgsql AS $f$
        #variable_conflict use_column
        DECLARE
            c record;
            s record;
            v_from date;
            n int := 0;
            k int := 0;
        BEGIN
            -- Due schedules, read without a lock (Citus: see 101_citus_compat3.sql) …
            FOR c IN SELECT sc.tenant_id, sc.id, t.time_zone
                       FROM schedule sc JOIN tenant t ON t.id = sc.tenant_id
                      WHERE sc.deleted IS NULL
                        AND circa_schedule_due(sc.next_from, sc.every, sc.due_after, t.time_zone) <= now()
                      ORDER BY sc.next_from LOOP
                EXIT WHEN k >= p_limit;
                -- … then each locked by its key, unless another process holds it, and checked again.
                SELECT sc.tenant_id, sc.id, sc.every, sc.next_from, sc.due_after, c.time_zone AS time_zone
                  INTO s
                  FROM schedule sc
                 WHERE sc.tenant_id = c.tenant_id AND sc.id = c.id AND sc.deleted IS NULL
                   AND circa_schedule_due(sc.next_from, sc.every, sc.due_after, c.time_zone) <= now()
                   FOR UPDATE SKIP LOCKED;
                CONTINUE WHEN NOT FOUND;
                k := k + 1;
                v_from := s.next_from;
                WHILE n < 100 AND circa_schedule_due(v_from, s.every, s.due_after, s.time_zone) <= now() LOOP
                    INSERT INTO schedule_run (tenant_id, schedule_id, period_from, period_to)
                    VALUES (s.tenant_id, s.id, v_from, (v_from + circa_schedule_step(s.every))::date)
                    ON CONFLICT DO NOTHING;
                    v_from := (v_from + circa_schedule_step(s.every))::date;
                    n := n + 1;
                END LOOP;
                UPDATE schedule SET next_from = v_from WHERE tenant_id = s.tenant_id AND id = s.id;
            END LOOP;
            -- Runs without a report whose lease is free, oldest first, read without a lock …
            k := 0;
            FOR c IN SELECT r.tenant_id, r.schedule_id, r.period_from, r.period_to
                       FROM schedule_run r
                      WHERE r.report_id IS NULL AND (r.lease_until IS NULL OR r.lease_until < now())
                      ORDER BY r.created LOOP
                EXIT WHEN k >= p_limit;
                -- … then each locked by its key, checked again, and leased to p_owner.
                PERFORM 1 FROM schedule_run r
                  WHERE r.tenant_id = c.tenant_id AND r.schedule_id = c.schedule_id
                    AND r.period_from = c.period_from AND r.period_to = c.period_to
                    AND r.report_id IS NULL AND (r.lease_until IS NULL OR r.lease_until < now())
                    FOR UPDATE SKIP LOCKED;
                CONTINUE WHEN NOT FOUND;
                k := k + 1;
                UPDATE schedule_run r SET claimed_by = p_owner, lease_until = now() + p_lease
                 WHERE r.tenant_id = c.tenant_id AND r.schedule_id = c.schedule_id
                   AND r.period_from = c.period_from AND r.period_to = c.period_to;
                RETURN QUERY
                SELECT c.tenant_id, c.schedule_id, sc.type, sc.params, c.period_from, c.period_to
                  FROM schedule sc WHERE sc.tenant_id = c.tenant_id AND sc.id = c.schedule_id;
            END LOOP;
        END $f$;
    ELSE
        RAISE WARNING '101_citus_compat3: circa_schedule_claim has changed; it was not rewritten';
    END IF;

    -- circa_delivery_claim: candidates unlocked, then locked one by one by key.
    IF (SELECT p.prosrc ~ 'FOR UPDATE SKIP LOCKED LIMIT p_limit'
                   AND p.prosrc ~ 'abandoned: the sending circad stopped before recording an outcome'
                   AND p.prosrc ~ 'UPDATE delivery SET state = ''SENDING'', attempts = attempts \+ 1, claimed_by = p_owner,'
                   AND p.prosrc ~ 'ORDER BY x\.next_attempt NULLS FIRST'
          FROM pg_proc p
         WHERE p.oid = to_regprocedure('circa_delivery_claim(text,interval,integer)')) THEN
        CREATE OR REPLACE FUNCTION circa_delivery_claim(p_owner text, p_lease interval, p_limit int)
        RETURNS TABLE (tenant_id text, id text, prev_state text, attempt int, age_s double precision,
                       url text, secret text, secret_file text, report_sha text, body text)
        LANGUAGE plpgsql AS $f$
        #variable_conflict use_column
        DECLARE
            c record;
            d record;
            k int := 0;
        BEGIN
            -- Deliveries due, read without a lock (Citus: see 101_citus_compat3.sql) …
            FOR c IN SELECT x.tenant_id, x.id FROM delivery x
                      WHERE (x.state IN ('PENDING', 'RETRY_WAIT') AND x.next_attempt <= now())
                         OR (x.state = 'SENDING' AND x.lease_until < now())
                      ORDER BY x.next_attempt NULLS FIRST LOOP
                EXIT WHEN k >= p_limit;
                -- … then each locked by its key, unless another process holds it, and checked again.
                SELECT * INTO d FROM delivery x
                 WHERE x.tenant_id = c.tenant_id AND x.id = c.id
                   AND ((x.state IN ('PENDING', 'RETRY_WAIT') AND x.next_attempt <= now())
                        OR (x.state = 'SENDING' AND x.lease_until < now()))
                   FOR UPDATE SKIP LOCKED;
                CONTINUE WHEN NOT FOUND;
                k := k + 1;
                IF d.state = 'SENDING' THEN
                    INSERT INTO delivery_attempt (tenant_id, delivery_id, attempt, started, error, made_by)
                    VALUES (d.tenant_id, d.id, d.attempts, d.attempt_started,
                            'abandoned: the sending circad stopped before recording an outcome',
                            d.claimed_by)
                    ON CONFLICT DO NOTHING;
                END IF;
                UPDATE delivery SET state = 'SENDING', attempts = attempts + 1, claimed_by = p_owner,
                       lease_until = now() + p_lease, attempt_started = now(), next_attempt = NULL
                 WHERE tenant_id = d.tenant_id AND id = d.id;
                RETURN QUERY
                SELECT d.tenant_id, d.id, d.state, d.attempts + 1,
                       extract(epoch FROM now() - d.created)::double precision,
                       s.url, s.secret, s.secret_file, r.sha256, r.canon
                  FROM schedule s, report r
                 WHERE s.tenant_id = d.tenant_id AND s.id = d.schedule_id
                   AND r.tenant_id = d.tenant_id AND r.id = d.report_id;
            END LOOP;
        END $f$;
    ELSE
        RAISE WARNING '101_citus_compat3: circa_delivery_claim has changed; it was not rewritten';
    END IF;
    -- circa_schedule_list: the rows first, then circa_schedule_json per row (it takes the
    -- whole row; in a statement shipped to a shard that row is of the shard's type,
    -- schedule_102684, and "function circa_schedule_json(schedule_102684) does not exist").
    IF (SELECT p.prosrc ~ 'jsonb_agg\(circa_schedule_json\(s\)'
                   AND p.prosrc ~ 'ORDER BY s\.created, s\.id\), ''\[\]''\)'
                   AND p.prosrc ~ 'FROM schedule s WHERE s\.tenant_id = p_tenant AND s\.deleted IS NULL'
          FROM pg_proc p
         WHERE p.oid = to_regprocedure('circa_schedule_list(text)')) THEN
        CREATE OR REPLACE FUNCTION circa_schedule_list(p_tenant text) RETURNS jsonb
        LANGUAGE plpgsql STABLE AS $f$
        DECLARE
            s schedule;
            v jsonb := '[]';
        BEGIN
            FOR s IN SELECT * FROM schedule x WHERE x.tenant_id = p_tenant AND x.deleted IS NULL
                      ORDER BY x.created, x.id LOOP
                v := v || jsonb_build_array(circa_schedule_json(s));
            END LOOP;
            RETURN jsonb_build_object('schedules', v);
        END $f$;
    ELSE
        RAISE WARNING '101_citus_compat3: circa_schedule_list has changed; it was not rewritten';
    END IF;
END
$compat3$;
