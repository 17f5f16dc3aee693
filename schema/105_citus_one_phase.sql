-- Ingest commits in one phase on one worker under Citus (docs/SCALING.md).
--
-- Citus 13.2 commits a transaction in two phases (PREPARE TRANSACTION on the worker, then
-- COMMIT PREPARED) whenever it wrote through COPY: every COPY into a distributed table, and every
-- INSERT … SELECT it runs by pulling rows to the coordinator (any INSERT … SELECT whose SELECT it
-- cannot push to the target shard: FROM unnest(), a parameter, a reference table joined, …;
-- multi_copy.c: "all modifications use 2PC"), even when every row goes to one shard. A router
-- INSERT … VALUES, UPDATE or DELETE with tenant_id = literal or parameter commits in one phase.
-- A read with (tenant_id, seq) >= (t, a) row comparisons has no tenant_id equality: Citus sends
-- it to all 32 shards (019's range predicates, which 103 replaced on plain PostgreSQL only).
--
-- Everywhere: circa_ingest_rows(tenant, block, the 20 column arrays of circad's ingest_events)
-- writes a group's events; on plain PostgreSQL it is ingest_events' INSERT … SELECT FROM unnest()
-- (circad uses it only on Citus, where it also leaves COPY aside: daemon/ingest.c).
--
-- With citus only (plain PostgreSQL keeps 098–103's functions): each derive step that wrote with
-- INSERT … SELECT reads its rows with a router SELECT and writes them with one INSERT … VALUES
-- (circa_sql_row turns a row into a VALUES tuple of quoted literals, which INSERT casts to the
-- column types), and every group read is tenant_id = … AND seq BETWEEN … as 103 made them:
--   circa_ingest_rows, circa_rollup_add (100's, with 103's range), circa_derive_transformations
--   (098's), circa_loss_add, circa_derive_group and circa_interim_derive (103's),
--   circa_item_fate_add (019's), circa_item_day_add (102's); circa_kg reads the material's
--   density by its key (its LEFT JOIN from the reference table unit read every shard's
--   material rows). The rows written are those of the replaced statements.

CREATE OR REPLACE FUNCTION circa_ingest_rows(
    p_tenant text, p_block bigint, p_id text[], p_seq bigint[], p_type text[],
    p_time timestamptz[], p_raw text[], p_site text[], p_from text[], p_to text[],
    p_material text[], p_ewc text[], p_op text[], p_kg double precision[], p_item text[],
    p_lot text[], p_product text[], p_corrects text[], p_canon bytea[],
    p_value double precision[], p_currency text[], p_flags text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event (tenant_id, block_seq, recorded_time, id, seq, type, event_time, time_raw,
                       site, from_site, to_site, material, ewc, operation, quantity_kg, item, lot,
                       product, corrects, canon, value_amount, currency, flags)
    SELECT p_tenant, p_block, now(), u.id, u.seq, u.type, u.t, u.raw, u.site, u.from_site,
           u.to_site, u.material, u.ewc, u.op, u.kg, u.item, u.lot, u.product, u.corrects,
           u.canon, u.value, u.currency, coalesce(string_to_array(u.flags, ','), '{}')
      FROM unnest(p_id, p_seq, p_type, p_time, p_raw, p_site, p_from, p_to, p_material, p_ewc,
                  p_op, p_kg, p_item, p_lot, p_product, p_corrects, p_canon, p_value,
                  p_currency, p_flags)
           AS u(id, seq, type, t, raw, site, from_site, to_site, material, ewc, op, kg, item,
                lot, product, corrects, canon, value, currency, flags);
END $$;

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    SET LOCAL citus.multi_shard_modify_mode TO 'sequential';

    -- A row as a VALUES tuple: every column a quoted literal (NULL unquoted), in column order.
    -- json keeps the exact text of floats, timestamps (with offset) and bytea (\x…).
    EXECUTE $f$
CREATE FUNCTION circa_sql_row(p json) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT '(' || string_agg(quote_nullable(j.v), ', ' ORDER BY j.n) || ')'
      FROM json_each_text(p) WITH ORDINALITY AS j(k, v, n)
$$;
$f$;

    -- The two roll-up tables' writes (p_rows: circa_sql_row tuples in column order). A column
    -- a step does not sum is 0 in its rows (value_declared of transformations, kg of item
    -- lives, vsum of fates), so one upsert serves every step.
    EXECUTE $f$
CREATE FUNCTION circa_rollup_put(p_rows text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'INSERT INTO rollup_day AS r (tenant_id, day, site, counterpart, material, product,'
            ' type, operation, ewc, hazardous, kg, events, value_declared, kg_no_value, late)'
            ' VALUES ' || p_rows ||
            ' ON CONFLICT (tenant_id, day, site, counterpart, material, product, type, operation, ewc)'
            ' DO UPDATE SET kg = r.kg + EXCLUDED.kg, events = r.events + EXCLUDED.events,'
            ' value_declared = r.value_declared + EXCLUDED.value_declared,'
            ' kg_no_value = r.kg_no_value + EXCLUDED.kg_no_value, late = r.late + EXCLUDED.late';
END $$;
$f$;
    EXECUTE $f$
CREATE FUNCTION circa_item_day_put(p_rows text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'INSERT INTO item_day AS r (tenant_id, kind, day, d2, d3, product, v, n, kg, vsum)'
            ' VALUES ' || p_rows ||
            ' ON CONFLICT (tenant_id, kind, day, d2, d3, product, v)'
            ' DO UPDATE SET n = r.n + EXCLUDED.n, kg = r.kg + EXCLUDED.kg, vsum = r.vsum + EXCLUDED.vsum';
END $$;
$f$;

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_ingest_rows(
    p_tenant text, p_block bigint, p_id text[], p_seq bigint[], p_type text[],
    p_time timestamptz[], p_raw text[], p_site text[], p_from text[], p_to text[],
    p_material text[], p_ewc text[], p_op text[], p_kg double precision[], p_item text[],
    p_lot text[], p_product text[], p_corrects text[], p_canon bytea[],
    p_value double precision[], p_currency text[], p_flags text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_rows text;
BEGIN
    SELECT string_agg(circa_sql_row(row_to_json(x)), ', ') INTO v_rows
      FROM (SELECT p_tenant AS tenant_id, p_block AS block_seq, now() AS recorded_time, u.id,
                   u.seq, u.type, u.t, u.raw, u.site, u.from_site, u.to_site, u.material, u.ewc,
                   u.op, u.kg, u.item, u.lot, u.product, u.corrects, u.canon, u.value,
                   u.currency, coalesce(string_to_array(u.flags, ','), '{}')::text AS flags
              FROM unnest(p_id, p_seq, p_type, p_time, p_raw, p_site, p_from, p_to, p_material,
                          p_ewc, p_op, p_kg, p_item, p_lot, p_product, p_corrects, p_canon,
                          p_value, p_currency, p_flags)
                   AS u(id, seq, type, t, raw, site, from_site, to_site, material, ewc, op, kg,
                        item, lot, product, corrects, canon, value, currency, flags)) x;
    IF v_rows IS NULL THEN
        RETURN;
    END IF;
    EXECUTE 'INSERT INTO event (tenant_id, block_seq, recorded_time, id, seq, type, event_time,'
            ' time_raw, site, from_site, to_site, material, ewc, operation, quantity_kg, item,'
            ' lot, product, corrects, canon, value_amount, currency, flags) VALUES ' || v_rows;
END $$;
$f$;

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_kg(p_tenant text, p_q jsonb, p_material text)
RETURNS double precision LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_factor double precision;
    v_kind text;
    v_density double precision;
BEGIN
    SELECT u.factor, u.kind INTO v_factor, v_kind FROM unit u WHERE u.code = p_q->>'unit';
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF v_kind = 'volume' THEN
        SELECT m.density_kg_m3 INTO v_density
          FROM material m WHERE m.tenant_id = p_tenant AND m.code = p_material;
    END IF;
    RETURN (p_q->>'value')::double precision * v_factor
           * CASE WHEN v_kind = 'volume' THEN v_density ELSE 1 END;
END $$;
$f$;

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_rollup_add(p_tenant text, p_first bigint, p_last bigint,
                                            p_only_ids text[], p_sign double precision)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_tz text;
    v_lo bigint := p_first;
    v_hi bigint := p_last;
    v_rows text;
BEGIN
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_only_ids IS NOT NULL THEN
        SELECT min(seq), max(seq) INTO v_lo, v_hi
          FROM event WHERE tenant_id = p_tenant AND id = ANY (p_only_ids);
        IF v_lo IS NULL THEN
            RETURN;
        END IF;
    END IF;
    SELECT string_agg(circa_sql_row(row_to_json(x)), ', ') INTO v_rows
      FROM (SELECT p_tenant AS tenant_id, (e.event_time AT TIME ZONE v_tz)::date AS day,
                   coalesce(e.site, '') AS site,
                   coalesce(CASE WHEN e.type = 'shipped' THEN e.to_site
                                 WHEN e.type IN ('received', 'collected') THEN e.from_site END, '') AS cp,
                   coalesce(e.material, '') AS material, coalesce(e.product, '') AS product, e.type,
                   coalesce(e.operation, '') AS operation, coalesce(e.ewc, '') AS ewc,
                   coalesce(w.hazardous, false) AS hazardous,
                   p_sign * sum(coalesce(e.quantity_kg, 0)) AS kg, (p_sign * count(*))::bigint AS events,
                   p_sign * sum(coalesce(e.value_amount, 0)) AS value_declared,
                   p_sign * sum(CASE WHEN e.value_amount IS NULL THEN coalesce(e.quantity_kg, 0) ELSE 0 END) AS kg_no_value,
                   (p_sign * count(*) FILTER (WHERE e.recorded_time > e.event_time + interval '1 day'))::bigint AS late
              FROM event e
              LEFT JOIN ewc w ON w.code = e.ewc
             WHERE e.tenant_id = p_tenant AND e.seq BETWEEN v_lo AND v_hi
               AND (p_only_ids IS NULL OR e.id = ANY (p_only_ids))
               AND e.type NOT IN ('corrected', 'measured', 'observed', 'transformed')
             GROUP BY 2, 3, 4, 5, 6, 7, 8, 9, 10) x;
    IF v_rows IS NOT NULL THEN
        PERFORM circa_rollup_put(v_rows);
    END IF;
END $$;
$f$;

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_derive_transformations(p_tenant text, p_first bigint, p_last bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e record;
    x jsonb;
    v_tz text;
    v_rows text;
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

    SELECT string_agg(circa_sql_row(row_to_json(y)), ', ') INTO v_rows
      FROM (SELECT p_tenant, i.id, i.lot AS input_lot, o.lot AS output_lot, i.kg AS input_kg,
                   o.kg AS output_kg, i.kg / nullif(sum(i.kg) OVER (PARTITION BY i.id, o.lot), 0) AS share,
                   nullif(o.fate, '') AS fate, i.t
              FROM unnest(i_id, i_lot, i_kg, i_time) AS i(id, lot, kg, t)
              JOIN unnest(o_id, o_lot, o_kg, o_fate) AS o(id, lot, kg, fate) ON o.id = i.id) y;
    IF v_rows IS NOT NULL THEN
        EXECUTE 'INSERT INTO lot_link (tenant_id, event_id, input_lot, output_lot, input_kg,'
                ' output_kg, share, fate, event_time) VALUES ' || v_rows || ' ON CONFLICT DO NOTHING';
    END IF;

    SELECT string_agg(circa_sql_row(row_to_json(y)), ', ') INTO v_rows
      FROM (SELECT DISTINCT ON (u.lot) p_tenant, u.lot, u.material, u.site, u.t
              FROM (SELECT lot, material, site, t, n FROM unnest(i_lot, i_mat, i_site, i_time)
                           WITH ORDINALITY AS a(lot, material, site, t, n)
                    UNION ALL
                    SELECT lot, material, site, t, n + cardinality(i_lot)
                      FROM unnest(o_lot, o_mat, o_site, o_time) WITH ORDINALITY AS b(lot, material, site, t, n)) u
             ORDER BY u.lot, u.n) y;
    IF v_rows IS NOT NULL THEN
        EXECUTE 'INSERT INTO lot (tenant_id, id, material, site, first_seen) VALUES ' || v_rows
                || ' ON CONFLICT DO NOTHING';
    END IF;

    -- Inputs roll up as type transformed_in, outputs as transformed_out with the fate as
    -- counterpart, so recyclers' yields read from roll-ups like every other flow.
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT string_agg(circa_sql_row(row_to_json(y)), ', ') INTO v_rows
      FROM (SELECT p_tenant, (f.t AT TIME ZONE v_tz)::date AS day, coalesce(f.site, '') AS site,
                   f.counterpart, f.material, '' AS product, f.type, '' AS operation, '' AS ewc,
                   false AS hazardous, sum(f.kg) AS kg, count(*) AS events, 0 AS value_declared,
                   sum(f.kg) AS kg_no_value,
                   count(*) FILTER (WHERE f.rec > f.t + interval '1 day') AS late
              FROM (SELECT site, t, rec, material, kg, '' AS counterpart, 'transformed_in' AS type
                      FROM unnest(i_site, i_time, i_rec, i_mat, i_kg) AS a(site, t, rec, material, kg)
                    UNION ALL
                    SELECT site, t, rec, material, kg, fate, 'transformed_out'
                      FROM unnest(o_site, o_time, o_rec, o_mat, o_kg, o_fate)
                           AS b(site, t, rec, material, kg, fate)) f
             GROUP BY 2, 3, 4, 5, 7) y;
    IF v_rows IS NOT NULL THEN
        PERFORM circa_rollup_put(v_rows);
    END IF;
END $$;
$f$;

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_loss_add(p_tenant text, p_first bigint, p_last bigint,
                                          p_only_ids text[], p_sign double precision)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_tz text;
    v_rows text;
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
                AND (p_only_ids IS NULL AND e.seq BETWEEN p_first AND p_last
                     OR e.id = ANY (p_only_ids)) LOOP
        a_day := a_day || (r.event_time AT TIME ZONE v_tz)::date;
        a_site := a_site || coalesce(r.site, '');
        a_kg := a_kg || circa_kg(p_tenant, r.loss, NULL);
    END LOOP;
    IF cardinality(a_day) = 0 THEN
        RETURN;
    END IF;
    SELECT string_agg(circa_sql_row(row_to_json(y)), ', ') INTO v_rows
      FROM (SELECT p_tenant, x.day, x.site, p_sign * coalesce(sum(x.kg), 0) AS kg
              FROM unnest(a_day, a_site, a_kg) AS x(day, site, kg)
             GROUP BY x.day, x.site) y;
    EXECUTE 'INSERT INTO loss_day AS d (tenant_id, day, site, kg) VALUES ' || v_rows
            || ' ON CONFLICT (tenant_id, day, site) DO UPDATE SET kg = d.kg + EXCLUDED.kg';
END $$;
$f$;

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_derive_group(p_tenant text, p_first bigint, p_last bigint,
                                              p_kinds integer) RETURNS void
LANGUAGE plpgsql
SET enable_seqscan TO 'off'
SET enable_hashjoin TO 'off'
SET enable_mergejoin TO 'off'
AS $$
DECLARE
    e record;
    v_lenient boolean := false;
    v_items text[];
    v_retiring text[];
    v_corrects text[];
    v_by text[];
    v_rows text;
BEGIN
    IF p_kinds & 12 <> 0 THEN
        SELECT mode = 'lenient' INTO v_lenient FROM tenant WHERE id = p_tenant;
    END IF;
    PERFORM circa_rollup_add(p_tenant, p_first, p_last, NULL, 1);
    IF p_kinds & 1 <> 0 THEN
        PERFORM circa_derive_transformations(p_tenant, p_first, p_last);
        PERFORM circa_loss_add(p_tenant, p_first, p_last, NULL, 1);
    END IF;
    IF p_kinds & 2 <> 0 THEN
        SELECT string_agg(circa_sql_row(row_to_json(y)), ', ') INTO v_rows
          FROM (SELECT DISTINCT ON (lot) p_tenant, lot, material, site, event_time
                  FROM event
                 WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
                   AND lot IS NOT NULL
                 ORDER BY lot, seq) y;
        IF v_rows IS NOT NULL THEN
            EXECUTE 'INSERT INTO lot (tenant_id, id, material, site, first_seen) VALUES '
                    || v_rows || ' ON CONFLICT DO NOTHING';
        END IF;
    END IF;
    IF p_kinds & 8 <> 0 THEN
        FOR e IN SELECT id, corrects, convert_from(canon, 'UTF8')::jsonb->'replacement'->>'id' AS repl
                   FROM event
                  WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
                    AND type = 'corrected' ORDER BY seq LOOP
            PERFORM circa_apply_correction(p_tenant, v_lenient, e.id, e.corrects, e.repl);
            v_corrects := v_corrects || e.corrects;
            v_by := v_by || e.id;
        END LOOP;
        -- Corrected retiring item events leave the fates (lenient violations corrected nothing).
        PERFORM circa_item_fate_add(p_tenant, ARRAY(
            SELECT c.corrected FROM correction c
             WHERE c.tenant_id = p_tenant AND c.corrected = ANY (v_corrects)
               AND c.by_event = ANY (v_by)), -1);
    END IF;
    PERFORM circa_interim_derive(p_tenant, p_first, p_last, p_kinds);
    IF p_kinds & 4 <> 0 THEN
        SELECT array_agg(DISTINCT item),
               array_agg(id) FILTER (WHERE type IN ('recycled', 'energy_recovered', 'disposed'))
          INTO v_items, v_retiring
          FROM event
         WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
           AND item IS NOT NULL AND type <> 'corrected';
        PERFORM circa_item_day_add(p_tenant, v_items, -1);
        FOR e IN SELECT id, type, item, product, event_time
                   FROM event
                  WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
                    AND item IS NOT NULL AND type <> 'corrected' ORDER BY seq LOOP
            PERFORM circa_apply_item(p_tenant, v_lenient, e.id, e.type, e.item, e.product,
                                     e.event_time);
        END LOOP;
        PERFORM circa_item_day_add(p_tenant, v_items, 1);
        PERFORM circa_item_fate_add(p_tenant, v_retiring, 1);
    END IF;
END $$;
$f$;

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_interim_derive(p_tenant text, p_first bigint, p_last bigint,
                                                p_kinds integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_lots text[];
    v_interim text[];
    v_transformed text[];
    v_corrected text[];
    v_rows text;
    j record;
    v_next timestamptz;
BEGIN
    -- Nothing interim can change without lots, transformations, corrections or an interim
    -- operation in the group (bits 2, 1, 8 and 16 of p_kinds, set by circad).
    IF p_kinds & 27 = 0 THEN
        RETURN;
    END IF;
    SELECT array_agg(DISTINCT lot) FILTER (WHERE lot IS NOT NULL),
           array_agg(id) FILTER (WHERE operation IN ('R12', 'R13', 'D13', 'D14', 'D15')),
           array_agg(id) FILTER (WHERE type = 'transformed'),
           array_agg(corrects) FILTER (WHERE type = 'corrected')
      INTO v_lots, v_interim, v_transformed, v_corrected
      FROM event
     WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last;
    IF v_corrected IS NOT NULL THEN
        DELETE FROM interim_event i
         WHERE i.tenant_id = p_tenant AND i.id = ANY (v_corrected)
           AND EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                        AND c.corrected = i.id);
        -- The corrected events' lots (a transformation's: its inputs) may be interim again.
        v_lots := v_lots || ARRAY(
            SELECT coalesce(k.lot, i->>'lot') FROM event k
              LEFT JOIN LATERAL jsonb_array_elements(
                  CASE WHEN k.type = 'transformed'
                       THEN convert_from(k.canon, 'UTF8')::jsonb->'inputs' ELSE '[]' END) i ON true
             WHERE k.tenant_id = p_tenant AND k.id = ANY (v_corrected)
               AND coalesce(k.lot, i->>'lot') IS NOT NULL);
    END IF;
    IF v_interim IS NOT NULL THEN
        SELECT string_agg(circa_sql_row(row_to_json(y)), ', ') INTO v_rows
          FROM (SELECT p_tenant, e.id, e.seq, e.lot, e.event_time, e.site, e.material, e.product,
                       e.quantity_kg
                  FROM event e
                 WHERE e.tenant_id = p_tenant AND e.id = ANY (v_interim)
                   AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                                    AND c.corrected = e.id)) y;
        IF v_rows IS NOT NULL THEN
            EXECUTE 'INSERT INTO interim_event (tenant_id, id, seq, lot, event_time, site, material,'
                    ' product, kg) VALUES ' || v_rows || ' ON CONFLICT DO NOTHING';
        END IF;
    END IF;
    IF v_transformed IS NOT NULL THEN
        v_lots := v_lots || ARRAY(SELECT input_lot FROM lot_link
                                   WHERE tenant_id = p_tenant AND event_id = ANY (v_transformed));
    END IF;
    IF v_lots IS NULL OR cardinality(v_lots) = 0 THEN
        RETURN;
    END IF;
    -- Interim events of these lots may have moved on (or back, after a correction); the
    -- cursor reads interim_event as it was before the loop (100_citus_compat2.sql).
    FOR j IN SELECT x.id, x.seq, x.lot, x.event_time, x.next_time FROM interim_event x
              WHERE x.tenant_id = p_tenant AND x.lot = ANY (v_lots) LOOP
        v_next := circa_interim_next(p_tenant, j.id, j.seq, j.lot, j.event_time);
        IF v_next IS DISTINCT FROM j.next_time THEN
            UPDATE interim_event SET next_time = v_next
             WHERE tenant_id = p_tenant AND id = j.id;
        END IF;
    END LOOP;
END $$;
$f$;

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_item_fate_add(p_tenant text, p_ids text[], p_sign integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_tz text;
    v_rows text;
BEGIN
    IF p_ids IS NULL OR cardinality(p_ids) = 0 THEN
        RETURN;
    END IF;
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT string_agg(circa_sql_row(row_to_json(y)), ', ') INTO v_rows
      FROM (SELECT p_tenant, e.type, (e.event_time AT TIME ZONE v_tz)::date AS day,
                   'infinity'::date AS d2, 'infinity'::date AS d3,
                   coalesce(e.product, i.product, '') AS product, 0 AS v, p_sign * count(*) AS n,
                   p_sign * coalesce(sum(e.quantity_kg), 0) AS kg, 0 AS vsum
              FROM event e
              LEFT JOIN item i ON i.tenant_id = p_tenant AND i.id = e.item
             WHERE e.tenant_id = p_tenant AND e.id = ANY (p_ids) AND e.item IS NOT NULL
               AND e.type IN ('recycled', 'energy_recovered', 'disposed')
             GROUP BY 1, 2, 3, 4, 5, 6) y;
    IF v_rows IS NOT NULL THEN
        PERFORM circa_item_day_put(v_rows);
    END IF;
END $$;
$f$;

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_item_day_add(p_tenant text, p_items text[], p_sign integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_tz text;
    v_rows text;
BEGIN
    IF p_items IS NULL OR cardinality(p_items) = 0 THEN
        RETURN;
    END IF;
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    SELECT string_agg(circa_sql_row(row_to_json(y)), ', ') INTO v_rows
      FROM (SELECT p_tenant, x.kind, x.day, x.d2, x.d3, x.product, x.v, p_sign * count(*) AS n,
                   0 AS kg, p_sign * sum(x.v) AS vsum
              FROM (
                SELECT 'L' AS kind, (l.started AT TIME ZONE v_tz)::date AS day,
                       coalesce((lead(l.started) OVER w AT TIME ZONE v_tz)::date, 'infinity'::date) AS d2,
                       'infinity'::date AS d3, coalesce(l.product, '') AS product,
                       (row_number() OVER w)::float8 AS v
                  FROM lifecycle l
                 WHERE l.tenant_id = p_tenant AND l.item = ANY (p_items)
                WINDOW w AS (PARTITION BY l.item ORDER BY l.started, l.life)
                UNION ALL
                SELECT 'E', (l.ended AT TIME ZONE v_tz)::date, 'infinity'::date, 'infinity'::date,
                       coalesce(l.product, ''), extract(epoch FROM l.ended - l.started) / 86400
                  FROM lifecycle l
                 WHERE l.tenant_id = p_tenant AND l.item = ANY (p_items) AND l.ended IS NOT NULL
                UNION ALL
                SELECT 'M', (m.started AT TIME ZONE v_tz)::date,
                       coalesce((lag(m.started) OVER (PARTITION BY m.item ORDER BY m.started, m.life)
                                 AT TIME ZONE v_tz)::date, '-infinity'::date),
                       coalesce((SELECT (min(k.ended) AT TIME ZONE v_tz)::date FROM lifecycle k
                                  WHERE k.tenant_id = p_tenant AND k.item = m.item
                                    AND k.started >= m.started
                                    AND k.end_type IN ('returned', 'collected')), 'infinity'::date),
                       coalesce(m.product, ''), 0::float8
                  FROM lifecycle m
                 WHERE m.tenant_id = p_tenant AND m.item = ANY (p_items)
                   AND m.start_type = 'put_on_market') x
             GROUP BY x.kind, x.day, x.d2, x.d3, x.product, x.v) y;
    IF v_rows IS NOT NULL THEN
        PERFORM circa_item_day_put(v_rows);
    END IF;

    SELECT string_agg(circa_sql_row(row_to_json(y)), ', ') INTO v_rows
      FROM (SELECT p_tenant, date_trunc('month', x.day)::date AS month, x.product,
                   floor(x.v) AS b, p_sign * count(*) AS n, p_sign * sum(x.v) AS vsum
              FROM (SELECT (l.ended AT TIME ZONE v_tz)::date AS day, coalesce(l.product, '') AS product,
                           extract(epoch FROM l.ended - l.started) / 86400 AS v
                      FROM lifecycle l
                     WHERE l.tenant_id = p_tenant AND l.item = ANY (p_items) AND l.ended IS NOT NULL) x
             GROUP BY 2, 3, 4) y;
    IF v_rows IS NOT NULL THEN
        EXECUTE 'INSERT INTO use_day_bucket AS r (tenant_id, month, product, b, n, vsum)'
                ' VALUES ' || v_rows ||
                ' ON CONFLICT (tenant_id, month, product, b)'
                ' DO UPDATE SET n = r.n + EXCLUDED.n, vsum = r.vsum + EXCLUDED.vsum';
    END IF;
END $$;
$f$;
END
$do$;
