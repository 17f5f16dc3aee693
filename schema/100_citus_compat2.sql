-- Citus compatibility, second part (docs/SCALING.md): the derive steps of 015/016/018/019 that
-- Citus cannot run. Runs everywhere, after 099_citus.sql, with the same results on plain
-- PostgreSQL (one code path, so `make test` checks it too):
--   circa_interim_derive  its last statement, UPDATE interim_event SET next_time =
--       circa_interim_next(…, j.id, …), became a loop: next_time computed per interim event of
--       the lots, then an UPDATE by key where it changed. Citus refused the UPDATE ("STABLE
--       functions used in UPDATE queries cannot be called with column references"), and
--       circa_interim_next reads event/lot_link, which on a shard is a nested distributed query.
--   circa_loss_add  circa_kg (reads unit and material, distributed) was called per row inside
--       the INSERT … SELECT that Citus ships to the tenant's shard ("cannot execute a
--       distributed query from a query on a shard"). The losses are now computed in plpgsql,
--       then summed per (day, site) from unnest() and upserted, as circa_derive_transformations
--       does since 098.
--   circa_derive_group and the derive steps it calls are planned per call with the tenant as a
--       constant (plan_cache_mode = force_custom_plan): with a generic plan Citus cannot prune an
--       INSERT … SELECT to the tenant's shard, sends it to every shard, and an ingest
--       transaction then commits on every worker in two phases.
-- Each rewrite checks that the function still has the shape it was written for (a migration
-- before this one may have redefined it) and warns otherwise instead of replacing newer code.
DO $compat2$
DECLARE
    f record;
    v_def text;
    v_new text;
    v_citus boolean := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus');
BEGIN
    IF v_citus THEN
        -- Function DDL goes to every node over one connection each, in this transaction.
        SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
    END IF;

    -- circa_interim_derive: the UPDATE … circa_interim_next(…) becomes a block with a loop.
    SELECT pg_get_functiondef('circa_interim_derive(text,bigint,bigint,integer)'::regprocedure)
      INTO v_def;
    v_new := regexp_replace(v_def,
        'UPDATE interim_event i SET next_time = n\.t\s+'
        'FROM \(SELECT j\.id, circa_interim_next\(p_tenant, j\.id, j\.seq, j\.lot, j\.event_time\) AS t\s+'
        'FROM interim_event j\s+'
        'WHERE j\.tenant_id = p_tenant AND j\.lot = ANY \(v_lots\)\) n\s+'
        'WHERE i\.tenant_id = p_tenant AND i\.id = n\.id AND i\.next_time IS DISTINCT FROM n\.t;',
        $blk$DECLARE
        j record;
        v_next timestamptz;
    BEGIN
        -- One interim event at a time (Citus: see 100_citus_compat2.sql); the cursor reads
        -- interim_event as it was before the loop, as the UPDATE … FROM did.
        FOR j IN SELECT x.id, x.seq, x.lot, x.event_time, x.next_time FROM interim_event x
                  WHERE x.tenant_id = p_tenant AND x.lot = ANY (v_lots) LOOP
            v_next := circa_interim_next(p_tenant, j.id, j.seq, j.lot, j.event_time);
            IF v_next IS DISTINCT FROM j.next_time THEN
                UPDATE interim_event SET next_time = v_next
                 WHERE tenant_id = p_tenant AND id = j.id;
            END IF;
        END LOOP;
    END;$blk$);
    IF v_new <> v_def THEN
        EXECUTE v_new;
    ELSE
        RAISE WARNING '100_citus_compat2: circa_interim_derive has changed; its interim UPDATE was not rewritten';
    END IF;

    -- circa_loss_add: the losses in plpgsql, then one upsert from unnest().
    IF (SELECT p.prosrc ~ 'sum\(circa_kg\(p_tenant, convert_from\(e\.canon, ''UTF8''\)::jsonb->''loss'','
                   AND p.prosrc ~ '\(e\.tenant_id, e\.seq\) >= \(p_tenant, p_first\)'
                   AND p.prosrc ~ 'ON CONFLICT \(tenant_id, day, site\) DO UPDATE SET kg = d\.kg \+ EXCLUDED\.kg'
          FROM pg_proc p
         WHERE p.oid = 'circa_loss_add(text,bigint,bigint,text[],double precision)'::regprocedure) THEN
        CREATE OR REPLACE FUNCTION circa_loss_add(p_tenant text, p_first bigint, p_last bigint,
                                                  p_only_ids text[], p_sign double precision)
        RETURNS void LANGUAGE plpgsql AS $f$
        DECLARE
            r record;
            v_tz text;
            a_day date[] := '{}';
            a_site text[] := '{}';
            a_kg float8[] := '{}';
        BEGIN
            SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
            IF NOT FOUND THEN
                RETURN;
            END IF;
            FOR r IN SELECT e.event_time, e.site, convert_from(e.canon, 'UTF8')::jsonb->'loss' AS loss
                       FROM event e
                      WHERE e.tenant_id = p_tenant AND e.type = 'transformed'
                        AND (p_only_ids IS NULL AND (e.tenant_id, e.seq) >= (p_tenant, p_first)
                                                AND (e.tenant_id, e.seq) <= (p_tenant, p_last)
                             OR e.id = ANY (p_only_ids)) LOOP
                a_day := a_day || (r.event_time AT TIME ZONE v_tz)::date;
                a_site := a_site || coalesce(r.site, '');
                a_kg := a_kg || circa_kg(p_tenant, r.loss, NULL);
            END LOOP;
            IF cardinality(a_day) = 0 THEN
                RETURN;
            END IF;
            INSERT INTO loss_day AS d
            SELECT p_tenant, x.day, x.site, p_sign * coalesce(sum(x.kg), 0)
              FROM unnest(a_day, a_site, a_kg) AS x(day, site, kg)
             GROUP BY x.day, x.site
            ON CONFLICT (tenant_id, day, site) DO UPDATE SET kg = d.kg + EXCLUDED.kg;
        END $f$;
    ELSE
        RAISE WARNING '100_citus_compat2: circa_loss_add has changed; it was not rewritten';
    END IF;
    -- circa_inflow_of (019): circa_bom(p_tenant) (reads product and material) was joined inside
    -- a statement Citus ships to the tenant's shard ("cannot execute a distributed query from
    -- a query on a shard": GET /v1/metrics answered 500). The bill of materials is now read
    -- first, into arrays, and joined from unnest().
    IF (SELECT p.prosrc ~ 'LEFT JOIN circa_bom\(p_tenant\) b ON b\.product = r\.product'
                   AND p.prosrc ~ 'LEFT JOIN material mt ON mt\.tenant_id = p_tenant AND mt\.code = r\.material'
                   AND p.prosrc ~ 'WHERE r\.site_ok AND r\.mp_ok AND r\.type = ''produced'''
          FROM pg_proc p
         WHERE p.oid = to_regprocedure('circa_inflow_of(text,circa_rollup_row[])')) THEN
        CREATE OR REPLACE FUNCTION circa_inflow_of(p_tenant text, p_rows circa_rollup_row[],
                                                   OUT kg double precision, OUT secondary double precision,
                                                   OUT renewable double precision,
                                                   OUT secondary_value double precision,
                                                   OUT without_bom_kg double precision)
        LANGUAGE plpgsql STABLE AS $f$
        DECLARE
            b_product text[];
            b_secondary float8[];
            b_renewable float8[];
            b_value float8[];
        BEGIN
            SELECT array_agg(x.product), array_agg(x.secondary), array_agg(x.renewable),
                   array_agg(x.secondary_value_per_kg)
              INTO b_product, b_secondary, b_renewable, b_value
              FROM circa_bom(p_tenant) x;
            SELECT coalesce(sum(r.kg), 0), coalesce(sum(r.kg * b.secondary), 0),
                   coalesce(sum(r.kg * coalesce(b.renewable, CASE WHEN mt.renewable THEN 1 ELSE 0 END)), 0),
                   coalesce(sum(r.kg * b.secondary_value_per_kg), 0),
                   coalesce(sum(r.kg) FILTER (WHERE b.product IS NULL), 0)
              INTO kg, secondary, renewable, secondary_value, without_bom_kg
              FROM unnest(p_rows) r
              LEFT JOIN unnest(b_product, b_secondary, b_renewable, b_value)
                        AS b(product, secondary, renewable, secondary_value_per_kg)
                     ON b.product = r.product
              LEFT JOIN material mt ON mt.tenant_id = p_tenant AND mt.code = r.material
             WHERE r.site_ok AND r.mp_ok AND r.type = 'produced';
        END $f$;
    ELSE
        RAISE WARNING '100_citus_compat2: circa_inflow_of has changed; it was not rewritten';
    END IF;

    IF NOT v_citus THEN
        RETURN;
    END IF;

    -- With citus only: circa_rollup_add, the one INSERT … SELECT every ingest group runs, with
    -- the tenant and the range as literals (EXECUTE format('%L')) and the time zone read first.
    -- Citus 13.2 sends this INSERT … SELECT to all 32 shards (and the ingest transaction then
    -- commits on both workers in two phases) whenever it holds a parameter (custom or generic
    -- plan alike: plan_cache_mode does not help), joins the reference table tenant, or joins
    -- the reference table ewc and groups; written as INSERT … SELECT with literals it is
    -- planned "pull to coordinator", which always commits in two phases, even on one worker.
    -- So: the grouped rows are read with a router SELECT (literals, EXECUTE), then written
    -- with one router INSERT … VALUES … ON CONFLICT: one worker, one-phase commit.
    IF (SELECT p.prosrc ~ 'JOIN tenant t ON t\.id = e\.tenant_id'
                   AND p.prosrc ~ 'LEFT JOIN ewc w ON w\.code = e\.ewc'
                   AND p.prosrc ~ 'CASE WHEN e\.type = ''shipped'' THEN e\.to_site'
                   AND p.prosrc ~ 'WHEN e\.type IN \(''received'', ''collected''\) THEN e\.from_site END'
                   AND p.prosrc ~ '\(e\.tenant_id, e\.seq\) >= \(p_tenant, p_first\)'
                   AND p.prosrc ~ 'late = r\.late \+ EXCLUDED\.late'
          FROM pg_proc p
         WHERE p.oid = 'circa_rollup_add(text,bigint,bigint,text[],double precision)'::regprocedure) THEN
        CREATE OR REPLACE FUNCTION circa_rollup_add(p_tenant text, p_first bigint, p_last bigint,
                                                    p_only_ids text[], p_sign double precision)
        RETURNS void LANGUAGE plpgsql AS $f$
        DECLARE
            v_tz text;
            g record;
            v_rows text;
        BEGIN
            SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
            IF NOT FOUND THEN
                RETURN;
            END IF;
            -- The group's roll-up rows: a SELECT on the tenant's shard (router, literals only).
            FOR g IN EXECUTE format($q$
                SELECT (e.event_time AT TIME ZONE %2$L)::date AS day, coalesce(e.site, '') AS site,
                       coalesce(CASE WHEN e.type = 'shipped' THEN e.to_site
                                     WHEN e.type IN ('received', 'collected') THEN e.from_site END, '') AS cp,
                       coalesce(e.material, '') AS material, coalesce(e.product, '') AS product, e.type,
                       coalesce(e.operation, '') AS operation, coalesce(e.ewc, '') AS ewc,
                       coalesce(w.hazardous, false) AS hazardous,
                       %3$s * sum(coalesce(e.quantity_kg, 0)) AS kg, (%3$s * count(*))::bigint AS events,
                       %3$s * sum(coalesce(e.value_amount, 0)) AS value_declared,
                       %3$s * sum(CASE WHEN e.value_amount IS NULL THEN coalesce(e.quantity_kg, 0) ELSE 0 END) AS kg_no_value,
                       (%3$s * count(*) FILTER (WHERE e.recorded_time > e.event_time + interval '1 day'))::bigint AS late
                  FROM event e
                  LEFT JOIN ewc w ON w.code = e.ewc
                 WHERE e.tenant_id = %1$L AND %4$s
                   AND e.type NOT IN ('corrected', 'measured', 'observed', 'transformed')
                 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9$q$,
                p_tenant, v_tz, format('%L::float8', p_sign),
                CASE WHEN p_only_ids IS NULL
                     THEN format('(e.tenant_id, e.seq) >= (%L, %L::bigint) AND (e.tenant_id, e.seq) <= (%L, %L::bigint)',
                                 p_tenant, p_first, p_tenant, p_last)
                     ELSE format('e.id = ANY (%L::text[])', p_only_ids) END) LOOP
                v_rows := coalesce(v_rows || ', ', '') || format(
                    '(%L, %L::date, %L, %L, %L, %L, %L, %L, %L, %L::boolean, %L::float8, %L::bigint, %L::float8, %L::float8, %L::bigint)',
                    p_tenant, g.day, g.site, g.cp, g.material, g.product, g.type, g.operation, g.ewc,
                    g.hazardous, g.kg, g.events, g.value_declared, g.kg_no_value, g.late);
            END LOOP;
            IF v_rows IS NULL THEN
                RETURN;
            END IF;
            -- One multi-row INSERT … VALUES: a router insert into that shard (one-phase commit).
            EXECUTE 'INSERT INTO rollup_day AS r (tenant_id, day, site, counterpart, material, product,'
                    ' type, operation, ewc, hazardous, kg, events, value_declared, kg_no_value, late)'
                    ' VALUES ' || v_rows ||
                    ' ON CONFLICT (tenant_id, day, site, counterpart, material, product, type, operation, ewc)'
                    ' DO UPDATE SET kg = r.kg + EXCLUDED.kg, events = r.events + EXCLUDED.events,'
                    ' value_declared = r.value_declared + EXCLUDED.value_declared,'
                    ' kg_no_value = r.kg_no_value + EXCLUDED.kg_no_value, late = r.late + EXCLUDED.late';
        END $f$;
    ELSE
        RAISE WARNING '100_citus_compat2: circa_rollup_add has changed; it still plans over every shard';
    END IF;
END
$compat2$;
