-- Citus compatibility (docs/SCALING.md). Runs everywhere; on plain PostgreSQL it only rewrites
-- two writers as plpgsql with the same results and adds circa_head(), which reads tenant.
--
-- Everywhere:
--   circa_derive_transformations and circa_transformed_rollup_sub become plpgsql, one statement
--   at a time (Citus cannot plan their data-modifying / read-only CTEs with parameters).
--   circa_head(tenant): the chain head and the settings circad loads (0 rows: no such tenant).
-- With the citus extension only:
--   tenant_head(tenant_id, head_seq, head_hash), distributed by tenant_id and co-located with
--   event, holds the chain head, so an ingest transaction writes to one worker only (1PC).
--   tenant.head_seq/head_hash keep the head as it was when tenant_head took over (a tenant
--   without a tenant_head row: the head is still tenant's). circa_advance_head, circa_head,
--   circa_rollup_rebuild and the functions that name the head in their answer read tenant_head.
--   api_key becomes a reference table (needs circad's auth_key statement without a STABLE
--   function in RETURNING; see the report to the lead).
--   Every SQL-language function that reads tables becomes plpgsql (Citus refuses SQL functions
--   with parameters over its tables: "parameterized queries for SQL functions").
-- Order: on a new database this runs before 099_citus.sql, which distributes tenant_head and the
-- new functions like every other; on a cluster where 099 ran already it distributes them itself.

-- Lineage and roll-ups of the transformed events in a seq range.
CREATE OR REPLACE FUNCTION circa_derive_transformations(p_tenant text, p_first bigint, p_last bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e record;
    x jsonb;
    v_tz text;
    -- inputs (i_) and outputs (o_), one element per array entry of a transformed event
    i_id text[] := '{}'; i_site text[] := '{}'; i_time timestamptz[] := '{}';
    i_rec timestamptz[] := '{}'; i_lot text[] := '{}'; i_mat text[] := '{}'; i_kg float8[] := '{}';
    o_id text[] := '{}'; o_site text[] := '{}'; o_time timestamptz[] := '{}';
    o_rec timestamptz[] := '{}'; o_lot text[] := '{}'; o_mat text[] := '{}'; o_kg float8[] := '{}';
    o_fate text[] := '{}';
BEGIN
    FOR e IN SELECT ev.id, ev.site, ev.event_time, ev.recorded_time,
                    convert_from(ev.canon, 'UTF8')::jsonb AS doc
               FROM event ev
              WHERE ev.tenant_id = p_tenant AND ev.seq BETWEEN p_first AND p_last
                AND ev.type = 'transformed'
              ORDER BY ev.seq LOOP
        FOR x IN SELECT j FROM jsonb_array_elements(e.doc->'inputs') j LOOP
            i_id := i_id || e.id; i_site := i_site || e.site; i_time := i_time || e.event_time;
            i_rec := i_rec || e.recorded_time; i_lot := i_lot || (x->>'lot');
            i_mat := i_mat || (x->>'material');
            i_kg := i_kg || circa_kg(p_tenant, x->'quantity', x->>'material');
        END LOOP;
        FOR x IN SELECT j FROM jsonb_array_elements(e.doc->'outputs') j LOOP
            o_id := o_id || e.id; o_site := o_site || e.site; o_time := o_time || e.event_time;
            o_rec := o_rec || e.recorded_time; o_lot := o_lot || (x->>'lot');
            o_mat := o_mat || (x->>'material'); o_fate := o_fate || coalesce(x->>'fate', '');
            o_kg := o_kg || circa_kg(p_tenant, x->'quantity', x->>'material');
        END LOOP;
    END LOOP;
    IF cardinality(i_id) = 0 AND cardinality(o_id) = 0 THEN
        RETURN;
    END IF;

    INSERT INTO lot_link (tenant_id, event_id, input_lot, output_lot, input_kg, output_kg,
                          share, fate, event_time)
    SELECT p_tenant, i.id, i.lot, o.lot, i.kg, o.kg,
           i.kg / nullif(sum(i.kg) OVER (PARTITION BY i.id, o.lot), 0),
           nullif(o.fate, ''), i.t
      FROM unnest(i_id, i_lot, i_kg, i_time) AS i(id, lot, kg, t)
      JOIN unnest(o_id, o_lot, o_kg, o_fate) AS o(id, lot, kg, fate) ON o.id = i.id
    ON CONFLICT DO NOTHING;

    INSERT INTO lot (tenant_id, id, material, site, first_seen)
    SELECT DISTINCT ON (u.lot) p_tenant, u.lot, u.material, u.site, u.t
      FROM (SELECT lot, material, site, t, n FROM unnest(i_lot, i_mat, i_site, i_time)
                   WITH ORDINALITY AS a(lot, material, site, t, n)
            UNION ALL
            SELECT lot, material, site, t, n + cardinality(i_lot)
              FROM unnest(o_lot, o_mat, o_site, o_time) WITH ORDINALITY AS b(lot, material, site, t, n)) u
     ORDER BY u.lot, u.n
    ON CONFLICT DO NOTHING;

    -- Inputs roll up as type transformed_in, outputs as transformed_out with the fate as
    -- counterpart, so recyclers' yields read from roll-ups like every other flow.
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO rollup_day AS r
    SELECT p_tenant, (f.t AT TIME ZONE v_tz)::date, coalesce(f.site, ''),
           f.counterpart, f.material, '', f.type, '', '', false, sum(f.kg), count(*), 0,
           sum(f.kg), count(*) FILTER (WHERE f.rec > f.t + interval '1 day')
      FROM (SELECT site, t, rec, material, kg, '' AS counterpart, 'transformed_in' AS type
              FROM unnest(i_site, i_time, i_rec, i_mat, i_kg) AS a(site, t, rec, material, kg)
            UNION ALL
            SELECT site, t, rec, material, kg, fate, 'transformed_out'
              FROM unnest(o_site, o_time, o_rec, o_mat, o_kg, o_fate)
                   AS b(site, t, rec, material, kg, fate)) f
     GROUP BY 1, 2, 3, 4, 5, 7
    ON CONFLICT (tenant_id, day, site, counterpart, material, product, type, operation, ewc)
    DO UPDATE SET kg = r.kg + EXCLUDED.kg, events = r.events + EXCLUDED.events,
                  kg_no_value = r.kg_no_value + EXCLUDED.kg_no_value, late = r.late + EXCLUDED.late;
END $$;

-- A corrected transformation takes back what it added to the roll-ups (012_corrections.sql).
CREATE OR REPLACE FUNCTION circa_transformed_rollup_sub(p_tenant text, p_id text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    e record;
    x jsonb;
    v_tz text;
    f_mat text[] := '{}'; f_cp text[] := '{}'; f_type text[] := '{}'; f_kg float8[] := '{}';
BEGIN
    SELECT ev.site, ev.event_time, ev.recorded_time, convert_from(ev.canon, 'UTF8')::jsonb AS doc
      INTO e FROM event ev WHERE ev.tenant_id = p_tenant AND ev.id = p_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    FOR x IN SELECT j FROM jsonb_array_elements(e.doc->'inputs') j LOOP
        f_mat := f_mat || (x->>'material'); f_cp := f_cp || ''::text;
        f_type := f_type || 'transformed_in'::text;
        f_kg := f_kg || circa_kg(p_tenant, x->'quantity', x->>'material');
    END LOOP;
    FOR x IN SELECT j FROM jsonb_array_elements(e.doc->'outputs') j LOOP
        f_mat := f_mat || (x->>'material'); f_cp := f_cp || coalesce(x->>'fate', '');
        f_type := f_type || 'transformed_out'::text;
        f_kg := f_kg || circa_kg(p_tenant, x->'quantity', x->>'material');
    END LOOP;
    FOR x IN SELECT to_jsonb(s) FROM (
                 SELECT f.material, f.cp, f.type, sum(f.kg) AS kg, count(*) AS n
                   FROM unnest(f_mat, f_cp, f_type, f_kg) AS f(material, cp, type, kg)
                  GROUP BY 1, 2, 3) s LOOP
        UPDATE rollup_day r
           SET kg = r.kg - (x->>'kg')::float8, events = r.events - (x->>'n')::bigint,
               kg_no_value = r.kg_no_value - (x->>'kg')::float8,
               late = r.late - CASE WHEN e.recorded_time > e.event_time + interval '1 day'
                                    THEN (x->>'n')::bigint ELSE 0 END
         WHERE r.tenant_id = p_tenant AND r.day = (e.event_time AT TIME ZONE v_tz)::date
           AND r.site = coalesce(e.site, '') AND r.counterpart = x->>'cp'
           AND r.material = x->>'material' AND r.product = '' AND r.type = x->>'type'
           AND r.operation = '' AND r.ewc = '';
    END LOOP;
END $$;

-- The chain head, the settings circad loads with it and the signing key; no row: no such tenant. Without
-- citus the head is tenant's; with citus, tenant_head's (see below).
CREATE OR REPLACE FUNCTION circa_head(p_tenant text)
RETURNS TABLE (head_seq bigint, head_hash text, mode text,
               mass_balance_tolerance double precision, time_zone text, sign_public_key bytea)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY SELECT t.head_seq, t.head_hash, t.mode, t.mass_balance_tolerance, t.time_zone,
                        t.sign_public_key
                   FROM tenant t WHERE t.id = p_tenant;
END $$;

DO $compat$
DECLARE
    f record;
    v_def text;
    v_head text;
    v_body text;
    v_src text;
    v_outs text;
    v_pos int;
    v_dist boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RAISE NOTICE '098_citus_compat: citus is not installed; nothing more to do';
        RETURN;
    END IF;
    -- Has 099_citus.sql distributed the tables already?
    v_dist := EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'event'::regclass);
    SET LOCAL citus.multi_shard_modify_mode TO 'sequential';

    -- The chain head, one row per tenant that has ingested since this migration (seeded now).
    CREATE TABLE tenant_head (
        tenant_id text PRIMARY KEY,
        head_seq  bigint NOT NULL,
        head_hash text NOT NULL
    );
    INSERT INTO tenant_head SELECT id, head_seq, head_hash FROM tenant;
    IF v_dist THEN
        PERFORM create_distributed_table('tenant_head', 'tenant_id', colocate_with => 'event');
    END IF;

    CREATE OR REPLACE FUNCTION circa_head(p_tenant text)
    RETURNS TABLE (head_seq bigint, head_hash text, mode text,
                   mass_balance_tolerance double precision, time_zone text, sign_public_key bytea)
    LANGUAGE plpgsql STABLE AS $f$
    DECLARE
        t record;
        h record;
    BEGIN
        SELECT x.head_seq, x.head_hash, x.mode, x.mass_balance_tolerance, x.time_zone,
               x.sign_public_key
          INTO t FROM tenant x WHERE x.id = p_tenant;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        SELECT y.head_seq, y.head_hash INTO h FROM tenant_head y WHERE y.tenant_id = p_tenant;
        IF FOUND THEN
            t.head_seq := h.head_seq; t.head_hash := h.head_hash;
        END IF;
        head_seq := t.head_seq; head_hash := t.head_hash; mode := t.mode;
        mass_balance_tolerance := t.mass_balance_tolerance; time_zone := t.time_zone;
        sign_public_key := t.sign_public_key;
        RETURN NEXT;
    END $f$;

    -- Moves the head under tenant_head's row lock (a router UPDATE on the tenant's worker).
    -- A tenant without a row yet starts from tenant's head; two first writers race on the
    -- primary key and the loser hears CA001 like any stale writer.
    CREATE OR REPLACE FUNCTION circa_advance_head(p_tenant text, p_old_seq bigint, p_old_hash text,
                                                  p_new_seq bigint, p_new_hash text) RETURNS void
    LANGUAGE plpgsql AS $f$
    DECLARE
        v_seq bigint;
        v_hash text;
    BEGIN
        UPDATE tenant_head SET head_seq = p_new_seq, head_hash = p_new_hash
         WHERE tenant_id = p_tenant AND head_seq = p_old_seq AND head_hash = p_old_hash;
        IF FOUND THEN
            RETURN;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM tenant_head WHERE tenant_id = p_tenant) THEN
            SELECT head_seq, head_hash INTO v_seq, v_hash FROM tenant WHERE id = p_tenant;
            IF FOUND AND v_seq = p_old_seq AND v_hash = p_old_hash THEN
                INSERT INTO tenant_head VALUES (p_tenant, p_new_seq, p_new_hash)
                ON CONFLICT DO NOTHING;
                IF FOUND THEN
                    RETURN;
                END IF;
            END IF;
        END IF;
        RAISE EXCEPTION 'ledger head of tenant % moved', p_tenant USING ERRCODE = 'CA001';
    END $f$;

    -- The head seq, its row locked to the end of the transaction (no group commits meanwhile).
    CREATE OR REPLACE FUNCTION circa_head_lock(p_tenant text) RETURNS bigint
    LANGUAGE plpgsql AS $f$
    DECLARE
        v_seq bigint;
        v_hash text;
    BEGIN
        SELECT head_seq INTO v_seq FROM tenant_head WHERE tenant_id = p_tenant FOR UPDATE;
        IF FOUND THEN
            RETURN v_seq;
        END IF;
        SELECT head_seq, head_hash INTO v_seq, v_hash FROM tenant WHERE id = p_tenant;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        INSERT INTO tenant_head VALUES (p_tenant, v_seq, v_hash) ON CONFLICT DO NOTHING;
        SELECT head_seq INTO v_seq FROM tenant_head WHERE tenant_id = p_tenant FOR UPDATE;
        RETURN v_seq;
    END $f$;

    -- Functions that read or lock the head in tenant read tenant_head instead.
    FOR f IN SELECT p.oid, pg_get_functiondef(p.oid) AS def
               FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace AND s.nspname = 'public'
              WHERE p.proname LIKE 'circa\_%'
                AND p.proname NOT IN ('circa_head', 'circa_advance_head', 'circa_head_lock')
                AND p.prosrc ~ 'head_(seq|hash)' LOOP
        v_def := f.def;
        v_def := regexp_replace(v_def,
            'SELECT head_seq INTO (\w+) FROM tenant WHERE id = p_tenant FOR UPDATE;',
            '\1 := circa_head_lock(p_tenant);', 'g');
        v_def := regexp_replace(v_def,
            '(SELECT \* INTO (\w+) FROM tenant WHERE id = p_tenant;)',
            '\1 SELECT h.head_seq, h.head_hash INTO \2.head_seq, \2.head_hash FROM circa_head(p_tenant) h;',
            'g');
        v_def := regexp_replace(v_def,
            '\(SELECT head_(seq|hash) FROM tenant WHERE id = p_tenant\)',
            '(SELECT h.head_\1 FROM circa_head(p_tenant) h)', 'g');
        IF v_def <> f.def THEN
            EXECUTE v_def;
        ELSE
            RAISE WARNING '098_citus_compat: % reads the head in a way not rewritten', f.oid::regproc;
        END IF;
    END LOOP;

    -- SQL-language functions that read tables become plpgsql with the same body: Citus cannot
    -- plan a SQL function's statement over its tables when the arguments are parameters.
    -- Column names win over argument names, as they do in SQL functions.
    FOR f IN SELECT p.oid, p.proname, p.prosrc, p.proretset, p.prorettype, p.provolatile,
                    p.proargnames, p.proargmodes, pg_get_functiondef(p.oid) AS def
               FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace AND s.nspname = 'public'
               JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'sql'
              WHERE p.proname LIKE 'circa\_%' AND p.provolatile <> 'i' AND p.prosqlbody IS NULL
                AND EXISTS (SELECT 1 FROM pg_class c
                             JOIN pg_namespace cs ON cs.oid = c.relnamespace AND cs.nspname = 'public'
                            WHERE c.relkind IN ('r', 'p', 'v')
                              AND p.prosrc ~ ('\m' || c.relname || '\M')) LOOP
        v_src := regexp_replace(f.prosrc, ';?\s*$', '');
        v_pos := position(E'\nAS $function$' IN f.def);
        IF v_pos = 0 OR v_src ~ ';' THEN
            RAISE WARNING '098_citus_compat: % left as SQL', f.oid::regprocedure;
            CONTINUE;
        END IF;
        v_head := replace(substr(f.def, 1, v_pos), ' LANGUAGE sql', ' LANGUAGE plpgsql');
        IF f.proretset THEN
            v_body := E'#variable_conflict use_column\nBEGIN\nRETURN QUERY ' || v_src || E';\nEND';
        ELSIF f.prorettype = 'void'::regtype THEN
            v_body := E'BEGIN\n' || regexp_replace(v_src, '^\s*SELECT\M', 'PERFORM', 'i')
                      || E';\nEND';
        ELSIF f.provolatile = 'v' AND v_src ~* '\mRETURNING\M' THEN
            v_body := E'DECLARE\n_r ' || format_type(f.prorettype, NULL) || E';\nBEGIN\n'
                      || v_src || E' INTO _r;\nRETURN _r;\nEND';
        ELSIF f.prorettype = 'record'::regtype AND f.proargmodes IS NOT NULL THEN
            SELECT string_agg(quote_ident(n), ', ' ORDER BY i) INTO v_outs
              FROM unnest(f.proargnames, f.proargmodes) WITH ORDINALITY AS a(n, m, i)
             WHERE m IN ('o', 'b', 't');
            v_body := E'#variable_conflict use_column\nBEGIN\nSELECT * INTO ' || v_outs
                      || E' FROM (\n' || v_src || E'\n) AS _q LIMIT 1;\nEND';
        ELSE
            v_body := E'#variable_conflict use_column\nBEGIN\nRETURN (SELECT _q.* FROM (\n' || v_src
                      || E'\n) AS _q LIMIT 1);\nEND';
        END IF;
        EXECUTE v_head || 'AS $circa_body$' || v_body || '$circa_body$';
    END LOOP;

    -- api_key: a reference table (its key to tenant goes; 099 keeps it out of its own steps).
    FOR f IN SELECT c.conname FROM pg_constraint c
              WHERE c.conrelid = 'api_key'::regclass AND c.contype = 'f' LOOP
        EXECUTE format('ALTER TABLE api_key DROP CONSTRAINT %I', f.conname);
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'api_key'::regclass) THEN
        PERFORM create_reference_table('api_key');
    END IF;

    -- On a cluster where 099 ran already, the new functions are distributed here.
    IF v_dist THEN
        PERFORM create_distributed_function('circa_head(text)', '$1', colocate_with => 'event');
        PERFORM create_distributed_function('circa_head_lock(text)');
    END IF;
END
$compat$;
