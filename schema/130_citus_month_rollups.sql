-- The monthly and daily roll-ups of 110–115 on Citus (docs/SCALING.md). Numbered after the
-- other helpers' ranges so it comes after 110–115 everywhere; on plain PostgreSQL it does nothing.
-- 110–115 create rollup_month, interim_day, item_month, use_day_fine and use_day_daily and
-- distribute them on Citus, but keep them (statement triggers on rollup_day, interim_event and
-- item_day) and read them (circa_rollups_in, circa_interim, circa_item_metrics) on plain
-- PostgreSQL only: on Citus the tables stayed empty and the metrics read the daily tables.
-- Here, with citus, the same functions and triggers as 110–115 (their text, the latest of each),
-- with four changes:
--   * the triggers are created with citus.enable_unsafe_triggers: Citus puts them on every
--     shard, where they fire for the rows of that shard;
--   * the apply functions run with citus.allow_nested_distributed_execution: on the shard they
--     write the co-located shard of the roll-up (same tenant_id, so the same worker, local
--     execution in the same transaction); an ingest group still commits on one worker in one
--     phase (tests/citus/one_phase.sh);
--   * in a trigger on a shard the transition rows have the shard's row type (rollup_day_102…):
--     they become the table's type with ROW(r.*)::rollup_day instead of r::rollup_day;
--   * circa_rollups_in is plpgsql (Citus refuses a SQL function's statement over its tables
--     with parameters, as 098 found), circa_rollup_rebuild locks the head in tenant_head
--     (circa_head_lock, 098), and circa_item_month_apply's data-modifying CTEs are one
--     INSERT … VALUES per grid (circa_item_grids_put). The tables are then filled from the
--     daily ones, as 110–115 did.
-- Only DELETE (the rebuilds) keeps rollup_month and the item grids through triggers: the
-- ingest writes of rollup_day and item_day (105's circa_rollup_put, circa_item_day_put, 098's
-- circa_transformed_rollup_sub) add their rows there themselves, with router INSERT … VALUES:
-- a trigger per statement costs a nested distributed execution on the shard (CPU per
-- 1,000 plain events 245–284 → 429–439 ms with the triggers, docs/PERFORMANCE.md, Citus).
-- interim_day keeps 111's triggers (interim events change in groups with lots or interim
-- operations only).
-- A later change to one of these functions on plain PostgreSQL needs its Citus twin here (or in
-- a migration after this one); tests/citus/same_answers.sh compares the answers of both.

DO $do$
DECLARE
    t record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
    SET LOCAL citus.enable_unsafe_triggers TO on;

    -- 110: rollup_month, kept from rollup_day.
    EXECUTE $f$
CREATE FUNCTION circa_rollup_month_apply(p_old rollup_day[], p_new rollup_day[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_month AS m
    SELECT x.tenant_id, date_trunc('month', x.day::timestamp)::date, x.site, x.counterpart,
           x.material, x.product, x.type, x.operation, x.ewc, x.hazardous, sum(x.sign * x.kg),
           sum(x.sign * x.events), sum(x.sign * x.value_declared),
           sum(x.sign * x.kg_no_value), sum(x.sign * x.late)
      FROM (SELECT o.*, -1 AS sign FROM unnest(p_old) o
            UNION ALL
            SELECT n.*, 1 FROM unnest(p_new) n) x
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
    ON CONFLICT (tenant_id, month, site, counterpart, material, product, type, operation, ewc,
                 hazardous)
    DO UPDATE SET kg = m.kg + EXCLUDED.kg, events = m.events + EXCLUDED.events,
                  value_declared = m.value_declared + EXCLUDED.value_declared,
                  kg_no_value = m.kg_no_value + EXCLUDED.kg_no_value,
                  late = m.late + EXCLUDED.late;
END $$;
$f$;
    EXECUTE 'ALTER FUNCTION circa_rollup_month_apply(rollup_day[], rollup_day[]) SET citus.allow_nested_distributed_execution = on';
    EXECUTE $f$
CREATE FUNCTION circa_rollup_month_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM circa_rollup_month_apply('{}', ARRAY(SELECT ROW(r.*)::rollup_day FROM rollup_new r));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM circa_rollup_month_apply(ARRAY(SELECT ROW(r.*)::rollup_day FROM rollup_old r),
                                         ARRAY(SELECT ROW(r.*)::rollup_day FROM rollup_new r));
    ELSE
        PERFORM circa_rollup_month_apply(ARRAY(SELECT ROW(r.*)::rollup_day FROM rollup_old r), '{}');
    END IF;
    RETURN NULL;
END $$;
$f$;
    EXECUTE $f$
CREATE TRIGGER rollup_month_del AFTER DELETE ON rollup_day
    REFERENCING OLD TABLE AS rollup_old
    FOR EACH STATEMENT EXECUTE FUNCTION circa_rollup_month_sync();
$f$;
    -- rollup_day's writes on Citus add their months themselves (a trigger per statement costs a
    -- nested distributed execution on the shard: 2.7 → 4.4 ms of CPU per 20-event group): the
    -- upsert of 105's circa_rollup_put adds its rows' measures to rollup_month, the take-back of
    -- a corrected transformation subtracts them there too. Only DELETE (the rebuild) fires the
    -- trigger. Month deltas are the rows' measures: what Σ new − Σ old of 110's trigger gives.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_rollup_put(p_rows text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_months text;
BEGIN
    EXECUTE 'INSERT INTO rollup_day AS r (tenant_id, day, site, counterpart, material, product,'
            ' type, operation, ewc, hazardous, kg, events, value_declared, kg_no_value, late)'
            ' VALUES ' || p_rows ||
            ' ON CONFLICT (tenant_id, day, site, counterpart, material, product, type, operation, ewc)'
            ' DO UPDATE SET kg = r.kg + EXCLUDED.kg, events = r.events + EXCLUDED.events,'
            ' value_declared = r.value_declared + EXCLUDED.value_declared,'
            ' kg_no_value = r.kg_no_value + EXCLUDED.kg_no_value, late = r.late + EXCLUDED.late';
    EXECUTE 'SELECT string_agg(circa_sql_row(row_to_json(m)), '', '') FROM ('
            ' SELECT v.tenant_id, date_trunc(''month'', v.day::date::timestamp)::date AS month,'
            ' v.site, v.counterpart, v.material, v.product, v.type, v.operation, v.ewc,'
            ' v.hazardous::boolean AS hazardous, sum(v.kg::float8) AS kg,'
            ' sum(v.events::bigint) AS events, sum(v.value_declared::float8) AS value_declared,'
            ' sum(v.kg_no_value::float8) AS kg_no_value, sum(v.late::bigint) AS late'
            ' FROM (VALUES ' || p_rows || ') v(tenant_id, day, site, counterpart, material,'
            ' product, type, operation, ewc, hazardous, kg, events, value_declared, kg_no_value, late)'
            ' GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10) m' INTO v_months;
    EXECUTE 'INSERT INTO rollup_month AS m (tenant_id, month, site, counterpart, material, product,'
            ' type, operation, ewc, hazardous, kg, events, value_declared, kg_no_value, late)'
            ' VALUES ' || v_months ||
            ' ON CONFLICT (tenant_id, month, site, counterpart, material, product, type, operation,'
            ' ewc, hazardous) DO UPDATE SET kg = m.kg + EXCLUDED.kg, events = m.events + EXCLUDED.events,'
            ' value_declared = m.value_declared + EXCLUDED.value_declared,'
            ' kg_no_value = m.kg_no_value + EXCLUDED.kg_no_value, late = m.late + EXCLUDED.late';
END $$;
$f$;
    -- 098's take-back, each matched roll-up row's month taken back by the same amounts.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_transformed_rollup_sub(p_tenant text, p_id text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    e record;
    x jsonb;
    v_tz text;
    v_day date;
    v_late bigint;
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
    v_day := (e.event_time AT TIME ZONE v_tz)::date;
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
        v_late := CASE WHEN e.recorded_time > e.event_time + interval '1 day'
                       THEN (x->>'n')::bigint ELSE 0 END;
        UPDATE rollup_day r
           SET kg = r.kg - (x->>'kg')::float8, events = r.events - (x->>'n')::bigint,
               kg_no_value = r.kg_no_value - (x->>'kg')::float8, late = r.late - v_late
         WHERE r.tenant_id = p_tenant AND r.day = v_day
           AND r.site = coalesce(e.site, '') AND r.counterpart = x->>'cp'
           AND r.material = x->>'material' AND r.product = '' AND r.type = x->>'type'
           AND r.operation = '' AND r.ewc = '';
        IF FOUND THEN
            UPDATE rollup_month m
               SET kg = m.kg - (x->>'kg')::float8, events = m.events - (x->>'n')::bigint,
                   kg_no_value = m.kg_no_value - (x->>'kg')::float8, late = m.late - v_late
             WHERE m.tenant_id = p_tenant
               AND m.month = date_trunc('month', v_day::timestamp)::date
               AND m.site = coalesce(e.site, '') AND m.counterpart = x->>'cp'
               AND m.material = x->>'material' AND m.product = '' AND m.type = x->>'type'
               AND m.operation = '' AND m.ewc = '' AND NOT m.hazardous;
        END IF;
    END LOOP;
END $$;
$f$;
    -- 110's circa_rollups_in as plpgsql (Citus refuses a SQL function's statement over its
    -- tables when the arguments are parameters; 098 did the same to 007's).
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_rollups_in(p_tenant text, p_from date, p_to date, p_party text,
                                            p_site text, p_material text, p_product text)
RETURNS TABLE (site text, counterpart text, material text, product text, type text,
               operation text, category text, ewc text, hazardous boolean, kg double precision,
               events bigint, value_declared double precision, kg_no_value double precision,
               late bigint, site_ok boolean, mp_ok boolean)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH r AS (
        SELECT m.site, m.counterpart, m.material, m.product, m.type, m.operation, m.ewc,
               m.hazardous, m.kg, m.events, m.value_declared, m.kg_no_value, m.late
          FROM rollup_month m
         WHERE m.tenant_id = p_tenant AND m.month >= (circa_month_span(p_from, p_to)).mw
           AND m.month < (circa_month_span(p_from, p_to)).lm
        UNION ALL
        SELECT d.site, d.counterpart, d.material, d.product, d.type, d.operation, d.ewc,
               d.hazardous, d.kg, d.events, d.value_declared, d.kg_no_value, d.late
          FROM rollup_day d
         WHERE d.tenant_id = p_tenant AND d.day >= p_from
           AND d.day < (circa_month_span(p_from, p_to)).mw
        UNION ALL
        SELECT d.site, d.counterpart, d.material, d.product, d.type, d.operation, d.ewc,
               d.hazardous, d.kg, d.events, d.value_declared, d.kg_no_value, d.late
          FROM rollup_day d
         WHERE d.tenant_id = p_tenant AND d.day >= (circa_month_span(p_from, p_to)).lm
           AND d.day < p_to
    )
    SELECT r.site, r.counterpart, r.material, r.product, r.type, r.operation,
           coalesce(o.category, ''), r.ewc, r.hazardous, sum(r.kg),
           sum(r.events)::bigint, sum(r.value_declared), sum(r.kg_no_value), sum(r.late)::bigint,
           (p_site IS NULL OR r.site = p_site)
             AND (p_party IS NULL OR EXISTS (SELECT 1 FROM site s WHERE s.tenant_id = p_tenant
                                              AND s.code = r.site AND s.party = p_party)),
           (p_material IS NULL OR r.material = p_material)
             AND (p_product IS NULL OR r.product = p_product)
      FROM r
      LEFT JOIN rd_operation o ON o.code = r.operation
     GROUP BY r.site, r.counterpart, r.material, r.product, r.type, r.operation, o.category,
              r.ewc, r.hazardous
    HAVING sum(r.events) <> 0 OR sum(r.kg) <> 0;
END $$;
$f$;
    -- 111: interim_day, kept from interim_event.
    EXECUTE $f$
CREATE FUNCTION circa_interim_next_day(p_tz text, p_lot text, p_next timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_lot IS NULL OR p_next IS NULL THEN 'infinity'::date
                ELSE (p_next AT TIME ZONE p_tz)::date END
$$;
$f$;
    EXECUTE $f$
CREATE FUNCTION circa_interim_day_apply(p_old interim_event[], p_new interim_event[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO interim_day AS d
    SELECT x.tenant_id, circa_interim_next_day(t.time_zone, x.lot, x.next_time),
           (x.event_time AT TIME ZONE t.time_zone)::date, coalesce(x.site, ''),
           coalesce(x.material, ''), coalesce(x.product, ''), x.lot IS NULL,
           sum(x.sign)::bigint, sum(x.sign * coalesce(x.kg, 0))
      FROM (SELECT o.*, -1 AS sign FROM unnest(p_old) o
            UNION ALL
            SELECT n.*, 1 FROM unnest(p_new) n) x
      JOIN tenant t ON t.id = x.tenant_id
     GROUP BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (tenant_id, next_day, day, site, material, product, no_lot)
    DO UPDATE SET events = d.events + EXCLUDED.events, kg = d.kg + EXCLUDED.kg;
END $$;
$f$;
    EXECUTE 'ALTER FUNCTION circa_interim_day_apply(interim_event[], interim_event[]) SET citus.allow_nested_distributed_execution = on';
    EXECUTE $f$
CREATE FUNCTION circa_interim_day_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        PERFORM circa_interim_day_apply(ARRAY[ROW(OLD.*)::interim_event], ARRAY[ROW(NEW.*)::interim_event]);
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM circa_interim_day_apply('{}', ARRAY(SELECT ROW(r.*)::interim_event FROM interim_new r));
    ELSE
        PERFORM circa_interim_day_apply(ARRAY(SELECT ROW(r.*)::interim_event FROM interim_old r), '{}');
    END IF;
    RETURN NULL;
END $$;
$f$;
    EXECUTE $f$
CREATE TRIGGER interim_day_ins AFTER INSERT ON interim_event
    REFERENCING NEW TABLE AS interim_new
    FOR EACH STATEMENT EXECUTE FUNCTION circa_interim_day_sync();
$f$;
    EXECUTE $f$
CREATE TRIGGER interim_day_upd AFTER UPDATE ON interim_event
    FOR EACH ROW EXECUTE FUNCTION circa_interim_day_sync();
$f$;
    EXECUTE $f$
CREATE TRIGGER interim_day_del AFTER DELETE ON interim_event
    REFERENCING OLD TABLE AS interim_old
    FOR EACH STATEMENT EXECUTE FUNCTION circa_interim_day_sync();
$f$;
    EXECUTE $f$
CREATE FUNCTION circa_interim_day_rebuild(p_tenant text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM interim_day WHERE tenant_id = p_tenant;
    INSERT INTO interim_day
    SELECT x.tenant_id, circa_interim_next_day(t.time_zone, x.lot, x.next_time),
           (x.event_time AT TIME ZONE t.time_zone)::date, coalesce(x.site, ''),
           coalesce(x.material, ''), coalesce(x.product, ''), x.lot IS NULL,
           count(*), sum(coalesce(x.kg, 0))
      FROM interim_event x
      JOIN tenant t ON t.id = x.tenant_id
     WHERE x.tenant_id = p_tenant
     GROUP BY 1, 2, 3, 4, 5, 6, 7;
END $$;
$f$;
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_rollup_rebuild(p_tenant text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_head bigint;
BEGIN
    v_head := circa_head_lock(p_tenant);   -- the head lives in tenant_head (098)
    DELETE FROM rollup_day WHERE tenant_id = p_tenant;
    PERFORM circa_rollup_add(p_tenant, 1, v_head, NULL, 1);
    PERFORM circa_derive_transformations(p_tenant, 1, v_head);
    PERFORM circa_rollup_add(p_tenant, 0, 0,
                             ARRAY(SELECT corrected FROM correction WHERE tenant_id = p_tenant), -1);
    DELETE FROM loss_day WHERE tenant_id = p_tenant;
    PERFORM circa_loss_add(p_tenant, 1, v_head, NULL, 1);
    PERFORM circa_loss_add(p_tenant, 0, 0,
                           ARRAY(SELECT corrected FROM correction WHERE tenant_id = p_tenant), -1);
    PERFORM circa_item_day_rebuild(p_tenant);
    PERFORM circa_interim_day_rebuild(p_tenant);
END $$;
$f$;
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_interim(p_tenant text, p_from timestamptz, p_to timestamptz,
                                         p_party text, p_site text, p_material text,
                                         p_product text, OUT kg double precision,
                                         OUT events bigint, OUT untracked_kg double precision)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_tz text;
    fd date;
    td date;
BEGIN
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    fd := (p_from AT TIME ZONE v_tz)::date;
    td := (p_to AT TIME ZONE v_tz)::date;
    IF fd::timestamp AT TIME ZONE v_tz = p_from AND td::timestamp AT TIME ZONE v_tz = p_to THEN
        SELECT coalesce(sum(d.kg), 0), coalesce(sum(d.events), 0),
               coalesce(sum(d.kg) FILTER (WHERE d.no_lot), 0)
          INTO kg, events, untracked_kg
          FROM interim_day d
         WHERE d.tenant_id = p_tenant AND d.next_day >= td AND d.day >= fd AND d.day < td
           AND (p_site IS NULL OR d.site = p_site)
           AND (p_party IS NULL OR EXISTS (SELECT 1 FROM site s WHERE s.tenant_id = p_tenant
                                            AND s.code = d.site AND s.party = p_party))
           AND (p_material IS NULL OR d.material = p_material)
           AND (p_product IS NULL OR d.product = p_product);
        RETURN;
    END IF;
    SELECT coalesce(sum(e.kg), 0), count(*),
           coalesce(sum(e.kg) FILTER (WHERE e.lot IS NULL), 0)
      INTO kg, events, untracked_kg
      FROM (SELECT * FROM interim_event
             WHERE tenant_id = p_tenant AND (lot IS NULL OR next_time IS NULL)
               AND event_time >= p_from AND event_time < p_to
            UNION ALL
            SELECT * FROM interim_event
             WHERE tenant_id = p_tenant AND next_time >= p_to AND lot IS NOT NULL
               AND event_time >= p_from AND event_time < p_to) e
     WHERE (p_site IS NULL OR e.site = p_site)
       AND (p_party IS NULL OR EXISTS (SELECT 1 FROM site s WHERE s.tenant_id = p_tenant
                                        AND s.code = e.site AND s.party = p_party))
       AND (p_material IS NULL OR e.material = p_material)
       AND (p_product IS NULL OR e.product = p_product);
END $$;
$f$;
    -- 112 and 115: item_month, use_day_fine and use_day_daily, kept from item_day: its upserts
    -- (105's circa_item_day_put) add their rows themselves, its DELETE (the rebuild) fires the
    -- trigger.
    EXECUTE $f$
CREATE INDEX item_day_d2 ON item_day (tenant_id, kind, d2, day) WHERE kind IN ('L', 'M')
$f$;
    EXECUTE $f$
CREATE INDEX item_day_d3 ON item_day (tenant_id, d3, day) WHERE kind = 'M'
$f$;
    EXECUTE $f$
CREATE INDEX item_day_use_fine ON item_day (tenant_id, floor(v * 64), day) WHERE kind = 'E'
$f$;
    -- 115's grids of item_day rows (signed: the rows taken away negated), each written with one
    -- INSERT … VALUES (a router insert, one phase, also from the coordinator).
    EXECUTE $f$
CREATE FUNCTION circa_item_grids_put(x item_day[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_rows text;
BEGIN
    SELECT string_agg(circa_sql_row(row_to_json(g)), ', ') INTO v_rows
      FROM (SELECT tenant_id, kind, date_trunc('month', day::timestamp)::date AS m1,
                   date_trunc('month', d2::timestamp)::date AS m2,
                   date_trunc('month', d3::timestamp)::date AS m3, product, v, sum(n) AS n,
                   sum(kg) AS kg
              FROM unnest(x) WHERE kind <> 'E'
             GROUP BY 1, 2, 3, 4, 5, 6, 7) g;
    IF v_rows IS NOT NULL THEN
        EXECUTE 'INSERT INTO item_month AS m (tenant_id, kind, m1, m2, m3, product, v, n, kg)'
                ' VALUES ' || v_rows || ' ON CONFLICT (tenant_id, kind, m1, m2, m3, product, v)'
                ' DO UPDATE SET n = m.n + EXCLUDED.n, kg = m.kg + EXCLUDED.kg';
    END IF;
    SELECT string_agg(circa_sql_row(row_to_json(g)), ', ') INTO v_rows
      FROM (SELECT tenant_id, day, product, floor(v) AS b, sum(n) AS n, sum(vsum) AS vsum
              FROM unnest(x) WHERE kind = 'E'
             GROUP BY 1, 2, 3, 4) g;
    IF v_rows IS NOT NULL THEN
        EXECUTE 'INSERT INTO use_day_daily AS y (tenant_id, day, product, b, n, vsum)'
                ' VALUES ' || v_rows || ' ON CONFLICT (tenant_id, day, product, b)'
                ' DO UPDATE SET n = y.n + EXCLUDED.n, vsum = y.vsum + EXCLUDED.vsum';
    END IF;
    SELECT string_agg(circa_sql_row(row_to_json(g)), ', ') INTO v_rows
      FROM (SELECT tenant_id, floor(v) AS b, date_trunc('month', day::timestamp)::date AS month,
                   product, floor(v * 64) AS f, sum(n) AS n
              FROM unnest(x) WHERE kind = 'E'
             GROUP BY 1, 2, 3, 4, 5) g;
    IF v_rows IS NOT NULL THEN
        EXECUTE 'INSERT INTO use_day_fine AS u (tenant_id, b, month, product, f, n)'
                ' VALUES ' || v_rows || ' ON CONFLICT (tenant_id, b, month, product, f)'
                ' DO UPDATE SET n = u.n + EXCLUDED.n';
    END IF;
END $$;
$f$;
    -- 115's apply (the trigger's): the rows taken away negated, then the grids.
    EXECUTE $f$
CREATE FUNCTION circa_item_month_apply(p_old item_day[], p_new item_day[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM circa_item_grids_put(ARRAY(
        SELECT ROW(r.tenant_id, r.kind, r.day, r.d2, r.d3, r.product, r.v, -r.n, -r.kg,
                   -r.vsum)::item_day
          FROM unnest(p_old) r
        UNION ALL
        SELECT r FROM unnest(p_new) r));
END $$;
$f$;
    EXECUTE 'ALTER FUNCTION circa_item_month_apply(item_day[], item_day[]) SET citus.allow_nested_distributed_execution = on';
    EXECUTE $f$
CREATE FUNCTION circa_item_month_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM circa_item_month_apply('{}', ARRAY(SELECT ROW(r.*)::item_day FROM item_new r));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM circa_item_month_apply(ARRAY(SELECT ROW(r.*)::item_day FROM item_old r),
                                       ARRAY(SELECT ROW(r.*)::item_day FROM item_new r));
    ELSE
        PERFORM circa_item_month_apply(ARRAY(SELECT ROW(r.*)::item_day FROM item_old r), '{}');
    END IF;
    RETURN NULL;
END $$;
$f$;
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_item_day_put(p_rows text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_rows item_day[];
BEGIN
    EXECUTE 'INSERT INTO item_day AS r (tenant_id, kind, day, d2, d3, product, v, n, kg, vsum)'
            ' VALUES ' || p_rows ||
            ' ON CONFLICT (tenant_id, kind, day, d2, d3, product, v)'
            ' DO UPDATE SET n = r.n + EXCLUDED.n, kg = r.kg + EXCLUDED.kg, vsum = r.vsum + EXCLUDED.vsum';
    -- The rows added, as item_day rows (computed here, on the coordinator: no table read).
    EXECUTE 'SELECT ARRAY(SELECT ROW(v.tenant_id, v.kind, v.day::date, v.d2::date, v.d3::date,'
            ' v.product, v.v::float8, v.n::bigint, v.kg::float8, v.vsum::float8)::item_day'
            ' FROM (VALUES ' || p_rows || ') v(tenant_id, kind, day, d2, d3, product, v, n, kg, vsum))'
      INTO v_rows;
    PERFORM circa_item_grids_put(v_rows);
END $$;
$f$;
    EXECUTE $f$
CREATE TRIGGER item_month_del AFTER DELETE ON item_day
    REFERENCING OLD TABLE AS item_old
    FOR EACH STATEMENT EXECUTE FUNCTION circa_item_month_sync();
$f$;
    EXECUTE $f$
CREATE FUNCTION circa_partial_days(fd date, td date, mw date, lm date) RETURNS date[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY(SELECT fd + g FROM generate_series(0, mw - fd - 1) g
                 UNION ALL
                 SELECT lm + g FROM generate_series(0, td - lm - 1) g)
$$;
$f$;
    EXECUTE $f$
CREATE FUNCTION circa_use_day_pair(p_tenant text, fd date, td date, mw date, lm date,
                                   p_product text, p_b double precision[], p_c bigint[],
                                   p_k bigint, p_both boolean)
RETURNS double precision[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    i integer;
    v_k bigint := p_k;
    v_b double precision;
    v_f double precision;
    r record;
    v_one double precision;
    v_cum numeric;
    v_n integer := 0;
    v_days date[] := circa_partial_days(fd, td, mw, lm);
BEGIN
    i := 1;
    WHILE i <= coalesce(cardinality(p_b), 0) AND v_k >= p_c[i] LOOP
        v_k := v_k - p_c[i];
        i := i + 1;
    END LOOP;
    IF i > coalesce(cardinality(p_b), 0) THEN
        RETURN ARRAY[NULL, NULL]::double precision[];
    END IF;
    v_b := p_b[i];
    FOR r IN SELECT z.f, sum(z.n)::bigint AS c
               FROM (SELECT u.f, u.n FROM use_day_fine u
                      WHERE u.tenant_id = p_tenant AND u.b = v_b
                        AND u.month >= mw AND u.month < lm
                        AND (p_product IS NULL OR u.product = p_product)
                     UNION ALL
                     SELECT floor(d.v * 64), d.n FROM item_day d
                      WHERE d.tenant_id = p_tenant AND d.kind = 'E' AND floor(d.v) = v_b
                        AND d.day = ANY (v_days)
                        AND (p_product IS NULL OR d.product = p_product)) z
              GROUP BY z.f HAVING sum(z.n) > 0 ORDER BY z.f LOOP
        v_f := r.f;
        EXIT WHEN v_k < r.c;
        v_k := v_k - r.c;
    END LOOP;
    FOR r IN SELECT x.v, x.cum FROM (
                 SELECT d.v, sum(sum(d.n)) OVER (ORDER BY d.v) AS cum
                   FROM item_day d
                  WHERE d.tenant_id = p_tenant AND d.kind = 'E' AND floor(d.v * 64) = v_f
                    AND d.day >= fd AND d.day < td
                    AND (p_product IS NULL OR d.product = p_product)
                  GROUP BY d.v HAVING sum(d.n) > 0) x
              WHERE x.cum > v_k
              ORDER BY x.v LIMIT 2 LOOP
        v_n := v_n + 1;
        IF v_n = 1 THEN
            v_one := r.v;
            v_cum := r.cum;
            -- Rank k + 1 holds the same value, or none is wanted.
            IF NOT p_both OR v_cum > v_k + 1 THEN
                RETURN ARRAY[v_one, v_one];
            END IF;
        ELSE
            RETURN ARRAY[v_one, r.v];
        END IF;
    END LOOP;
    -- Rank k + 1 is the first of a later 1/64-day bucket.
    RETURN ARRAY[v_one, (circa_use_day_pair(p_tenant, fd, td, mw, lm, p_product, p_b, p_c,
                                            p_k + 1, false))[1]];
END $$;
$f$;
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_item_metrics(p_tenant text, p_from timestamptz,
                                              p_to timestamptz, p_product text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_tz text;
    fd date;
    td date;
    fl date;     -- the month of fd
    tc date;     -- td, or the month after td's when td is not a month's first day
    v_items bigint; v_lives float8; v_dist jsonb;
    v_pct float8[];
    v_ended bigint; v_median float8; v_p90 float8; v_mean float8;
    v_market bigint; v_back bigint;
    v_fate jsonb; v_fate_n bigint; v_fate_kg float8;
    mw date; lm date; v_bb float8[]; v_bc bigint[]; v_vsum float8;
    j integer; v_p float8; v_x float8; v_two float8[];
    v_days date[];   -- the days of the partial months at either end
BEGIN
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    fd := (p_from AT TIME ZONE v_tz)::date;
    td := (p_to AT TIME ZONE v_tz)::date;
    SELECT s.mw, s.lm INTO mw, lm FROM circa_month_span(fd, td) s;
    fl := date_trunc('month', fd::timestamp)::date;
    tc := (date_trunc('month', (td - 1)::timestamp) + interval '1 month')::date;
    v_days := circa_partial_days(fd, td, mw, lm);

    -- Lives per item: L rows with day in [fd, td) and d2 >= td. Whole months of day with d2 in
    -- a month from tc on: the grid; the partial months of day, and d2 in [td, tc): item_day.
    SELECT coalesce(sum(c), 0), coalesce(sum(c * k), 0),
           coalesce(jsonb_object_agg(k::bigint::text, c) FILTER (WHERE c <> 0), '{}')
      INTO v_items, v_lives, v_dist
      FROM (SELECT z.v AS k, sum(z.n) AS c
              FROM (SELECT m.v, m.n FROM item_month m
                     WHERE m.tenant_id = p_tenant AND m.kind = 'L' AND m.m1 >= mw AND m.m1 < lm
                       AND m.m2 >= tc AND (p_product IS NULL OR m.product = p_product)
                    UNION ALL
                    SELECT i.v, i.n FROM item_day i
                     WHERE i.tenant_id = p_tenant AND i.kind = 'L' AND i.d2 >= td
                       AND i.day = ANY (v_days)
                       AND (p_product IS NULL OR i.product = p_product)
                    UNION ALL
                    SELECT i.v, i.n FROM item_day i
                     WHERE i.tenant_id = p_tenant AND i.kind = 'L' AND i.d2 >= td AND i.d2 < tc
                       AND i.day >= mw AND i.day < lm
                       AND (p_product IS NULL OR i.product = p_product)) z
             GROUP BY z.v HAVING sum(z.n) <> 0) x;

    -- Use days (102): bucket counts of the period (whole months from use_day_bucket, the
    -- partial months' days from use_day_daily), then percentile_cont's two ranks (114).
    SELECT array_agg(y.b ORDER BY y.b), array_agg(y.c ORDER BY y.b), sum(y.c), sum(y.s)
      INTO v_bb, v_bc, v_ended, v_vsum
      FROM (SELECT z.b, sum(z.n)::bigint AS c, sum(z.vsum) AS s
              FROM (SELECT u.b, u.n, u.vsum FROM use_day_bucket u
                     WHERE u.tenant_id = p_tenant AND u.month >= mw AND u.month < lm
                       AND (p_product IS NULL OR u.product = p_product)
                    UNION ALL
                    SELECT y.b, y.n, y.vsum FROM use_day_daily y
                     WHERE y.tenant_id = p_tenant
                       AND y.day = ANY (v_days)
                       AND (p_product IS NULL OR y.product = p_product)) z
             GROUP BY z.b HAVING sum(z.n) > 0) y;
    v_ended := coalesce(v_ended, 0);
    v_mean := v_vsum / nullif(v_ended, 0);
    v_pct := ARRAY[NULL, NULL]::float8[];
    IF v_ended > 0 THEN
        FOR j IN 1 .. 2 LOOP
            v_p := (ARRAY[0.5, 0.9]::float8[])[j];
            v_x := v_p * (v_ended - 1)::float8;
            v_two := circa_use_day_pair(p_tenant, fd, td, mw, lm, p_product, v_bb, v_bc,
                                        floor(v_x)::bigint, v_x <> floor(v_x));
            IF v_x = floor(v_x) THEN
                v_pct[j] := v_two[1];
            ELSE
                v_pct[j] := v_two[1] + (v_x - floor(v_x)) * (v_two[2] - v_two[1]);
            END IF;
        END LOOP;
    END IF;
    v_median := v_pct[1];
    v_p90 := v_pct[2];

    -- Return rate: M rows with day in [fd, td) and d2 < fd; returned when d3 < td. The grid
    -- decides whole months of day with d2's month before fl (and d3's before lm for the
    -- return); item_day gives the partial months of day, d2 in [fl, fd) and d3 in [lm, td).
    SELECT coalesce(sum(z.n) FILTER (WHERE z.market), 0),
           coalesce(sum(z.n) FILTER (WHERE z.back), 0)
      INTO v_market, v_back
      FROM (SELECT m.n, true AS market, m.m3 < lm AS back FROM item_month m
             WHERE m.tenant_id = p_tenant AND m.kind = 'M' AND m.m1 >= mw AND m.m1 < lm
               AND m.m2 < fl AND (p_product IS NULL OR m.product = p_product)
            UNION ALL
            SELECT i.n, true, i.d3 < td FROM item_day i
             WHERE i.tenant_id = p_tenant AND i.kind = 'M' AND i.d2 < fd
               AND i.day = ANY (v_days)
               AND (p_product IS NULL OR i.product = p_product)
            UNION ALL
            SELECT i.n, true, i.d3 < td FROM item_day i
             WHERE i.tenant_id = p_tenant AND i.kind = 'M' AND i.d2 >= fl AND i.d2 < fd
               AND i.day >= mw AND i.day < lm
               AND (p_product IS NULL OR i.product = p_product)
            UNION ALL
            SELECT i.n, false, true FROM item_day i
             WHERE i.tenant_id = p_tenant AND i.kind = 'M' AND i.d3 >= lm AND i.d3 < td
               AND i.d2 < fl AND i.day >= mw AND i.day < lm
               AND (p_product IS NULL OR i.product = p_product)) z;

    SELECT sum(r.n), sum(r.kg),
           jsonb_build_object('n', jsonb_object_agg(t.f, coalesce(r.n, 0)),
                              'kg', jsonb_object_agg(t.f, coalesce(r.kg, 0)))
      INTO v_fate_n, v_fate_kg, v_fate
      FROM unnest(ARRAY['recycled', 'energy_recovered', 'disposed']) t(f)
      LEFT JOIN (SELECT z.kind, sum(z.n) AS n, sum(z.kg) AS kg
                   FROM (SELECT m.kind, m.n, m.kg FROM item_month m
                          WHERE m.tenant_id = p_tenant
                            AND m.kind IN ('recycled', 'energy_recovered', 'disposed')
                            AND m.m1 >= mw AND m.m1 < lm
                            AND (p_product IS NULL OR m.product = p_product)
                         UNION ALL
                         SELECT i.kind, i.n, i.kg FROM item_day i
                          WHERE i.tenant_id = p_tenant
                            AND i.kind IN ('recycled', 'energy_recovered', 'disposed')
                            AND i.day = ANY (v_days)
                            AND (p_product IS NULL OR i.product = p_product)) z
                  GROUP BY z.kind) r ON r.kind = t.f;
    v_fate_n := coalesce(v_fate_n, 0);
    v_fate_kg := coalesce(v_fate_kg, 0);

    RETURN jsonb_build_object(
        'lives_per_item', circa_metric(circa_rate(v_lives, v_items), NULL, NULL,
            jsonb_build_object('items', v_items, 'lives', v_lives::bigint, 'distribution', v_dist)),
        'use_days', circa_metric(v_median, NULL, NULL,
            jsonb_build_object('lives_ended', v_ended, 'median', v_median, 'p90', v_p90,
                               'mean', v_mean)),
        'return_rate', circa_metric(circa_rate(v_back, v_market), NULL, NULL,
            jsonb_build_object('items_put_on_market', v_market, 'items_returned', v_back)),
        'fate', circa_metric(
            CASE WHEN v_fate_n > 0 THEN
                (SELECT jsonb_object_agg(k, (x::text)::float8 / v_fate_n)
                   FROM jsonb_each(v_fate->'n') j(k, x)) END,
            v_fate_kg, NULL,
            jsonb_build_object('items_retired', v_fate_n, 'items', v_fate->'n',
                               'kg', v_fate->'kg')));
END $$;
$f$;

    -- Existing tenants: the roll-ups from the daily tables (110, 111, 112, 115).
    INSERT INTO rollup_month
    SELECT tenant_id, date_trunc('month', day::timestamp)::date, site, counterpart, material,
           product, type, operation, ewc, hazardous, sum(kg), sum(events), sum(value_declared),
           sum(kg_no_value), sum(late)
      FROM rollup_day
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10;
    FOR t IN SELECT id FROM tenant LOOP
        PERFORM circa_interim_day_rebuild(t.id);
    END LOOP;
    INSERT INTO item_month
    SELECT tenant_id, kind, date_trunc('month', day::timestamp)::date,
           date_trunc('month', d2::timestamp)::date, date_trunc('month', d3::timestamp)::date,
           product, v, sum(n), sum(kg)
      FROM item_day WHERE kind <> 'E'
     GROUP BY 1, 2, 3, 4, 5, 6, 7;
    INSERT INTO use_day_fine
    SELECT tenant_id, floor(v), date_trunc('month', day::timestamp)::date, product,
           floor(v * 64), sum(n)
      FROM item_day WHERE kind = 'E'
     GROUP BY 1, 2, 3, 4, 5;
    INSERT INTO use_day_daily
    SELECT tenant_id, day, product, floor(v), sum(n), sum(vsum)
      FROM item_day WHERE kind = 'E'
     GROUP BY 1, 2, 3, 4;
END $do$;
