-- Roll-ups written by their writers, not by statement triggers (docs/PERFORMANCE.md, Metrics,
-- 140). 110–115 kept rollup_month and the item grids (item_month, use_day_fine, use_day_daily)
-- through statement triggers on every INSERT and UPDATE of rollup_day and item_day, and
-- interim_day through a row trigger on every UPDATE of interim_event: the trigger gathered the
-- transition tables into arrays and grouped Σ new − Σ old again. An ingest group of 1,000
-- demo events upserts ~900 rollup_day rows (keys rarely repeat within a group); the upsert
-- fired two triggers that grouped ~1,500 old and new rows (8 ms of its 15 ms), and
-- circa_interim_derive updated interim events one statement at a time, each firing the row
-- trigger (~0.25 ms each, ~60 per group). Now, as 130 does on Citus:
--   * circa_rollup_add, circa_derive_transformations and circa_transformed_rollup_sub pass the
--     rows (the deltas) they write to rollup_day to circa_rollup_month_apply themselves;
--     circa_item_day_add and circa_item_fate_add pass theirs to circa_item_month_apply;
--   * only DELETE (the rebuilds when the time zone changes) still keeps the month tables
--     through 110's and 112's triggers;
--   * circa_interim_derive computes its group's next times first and updates them in one
--     statement, and interim_day's UPDATE trigger is a statement trigger (transition tables).
-- The same rows are stored, with the same counts; the month tables' float sums differ from the
-- triggers' in the last digits (each delta is added, where the triggers added new − old).
-- Plain PostgreSQL only: on Citus, 130 already writes the months from its writers.

DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    DROP TRIGGER rollup_month_ins ON rollup_day;
    DROP TRIGGER rollup_month_upd ON rollup_day;
    DROP TRIGGER item_month_ins ON item_day;
    DROP TRIGGER item_month_upd ON item_day;
    DROP TRIGGER interim_day_upd ON interim_event;

    -- 113's body; the group's rows are aggregated once, upserted, and added to their months.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_rollup_add(p_tenant text, p_first bigint, p_last bigint,
                                            p_only_ids text[], p_sign double precision) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_lo bigint := p_first;
    v_hi bigint := p_last;
    v_rows rollup_day[];
BEGIN
    IF p_only_ids IS NOT NULL THEN
        SELECT min(seq), max(seq) INTO v_lo, v_hi
          FROM event WHERE tenant_id = p_tenant AND id = ANY (p_only_ids);
        IF v_lo IS NULL THEN
            RETURN;
        END IF;
    END IF;
    IF v_hi < v_lo THEN
        RETURN;
    END IF;
    v_rows := ARRAY(
        SELECT g::rollup_day FROM (
            SELECT e.tenant_id, (e.event_time AT TIME ZONE t.time_zone)::date,
                   coalesce(e.site, ''),
                   coalesce(CASE WHEN e.type = 'shipped' THEN e.to_site
                                 WHEN e.type IN ('received', 'collected') THEN e.from_site END, ''),
                   coalesce(e.material, ''), coalesce(e.product, ''), e.type,
                   coalesce(e.operation, ''), coalesce(e.ewc, ''), coalesce(w.hazardous, false),
                   p_sign * sum(coalesce(e.quantity_kg, 0)), (p_sign * count(*))::bigint,
                   p_sign * sum(coalesce(e.value_amount, 0)),
                   p_sign * sum(CASE WHEN e.value_amount IS NULL THEN coalesce(e.quantity_kg, 0)
                                     ELSE 0 END),
                   (p_sign * count(*) FILTER (WHERE e.recorded_time > e.event_time
                                                                      + interval '1 day'))::bigint
              FROM (SELECT * FROM event
                     WHERE tenant_id = p_tenant AND seq >= v_lo AND seq <= v_hi
                     ORDER BY seq LIMIT v_hi - v_lo + 1) e
              JOIN tenant t ON t.id = e.tenant_id
              LEFT JOIN ewc w ON w.code = e.ewc
             WHERE (p_only_ids IS NULL OR e.id = ANY (p_only_ids))
               AND e.type NOT IN ('corrected', 'measured', 'observed', 'transformed')
             GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10) g);
    IF cardinality(v_rows) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO rollup_day AS r SELECT * FROM unnest(v_rows)
    ON CONFLICT (tenant_id, day, site, counterpart, material, product, type, operation, ewc)
    DO UPDATE SET kg = r.kg + EXCLUDED.kg, events = r.events + EXCLUDED.events,
                  value_declared = r.value_declared + EXCLUDED.value_declared,
                  kg_no_value = r.kg_no_value + EXCLUDED.kg_no_value,
                  late = r.late + EXCLUDED.late;
    PERFORM circa_rollup_month_apply('{}', v_rows);
END $$;
$f$;

    -- 116's circa_derive_transformations; its roll-up rows also go to their months.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_derive_transformations(p_tenant text, p_first bigint, p_last bigint)
RETURNS void LANGUAGE sql AS $$
    WITH t AS (
        SELECT e.id, e.site, e.event_time, e.recorded_time,
               convert_from(e.canon, 'UTF8')::jsonb AS doc
          FROM (SELECT id, site, event_time, recorded_time, canon, type FROM event
                 WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
                 ORDER BY seq LIMIT p_last - p_first + 1) e
         WHERE e.type = 'transformed'
    ), ins AS (
        SELECT t.id, t.site, t.event_time, t.recorded_time, i->>'lot' AS lot,
               i->>'material' AS material, circa_kg(p_tenant, i->'quantity', i->>'material') AS kg
          FROM t, jsonb_array_elements(t.doc->'inputs') i
    ), outs AS (
        SELECT t.id, t.site, t.event_time, t.recorded_time, o->>'lot' AS lot,
               o->>'material' AS material, coalesce(o->>'fate', '') AS fate,
               circa_kg(p_tenant, o->'quantity', o->>'material') AS kg
          FROM t, jsonb_array_elements(t.doc->'outputs') o
    ), links AS (
        INSERT INTO lot_link (tenant_id, event_id, input_lot, output_lot, input_kg, output_kg,
                              share, fate, event_time)
        SELECT p_tenant, i.id, i.lot, o.lot, i.kg, o.kg,
               i.kg / nullif(sum(i.kg) OVER (PARTITION BY i.id, o.lot), 0),
               nullif(o.fate, ''), i.event_time
          FROM ins i JOIN outs o ON o.id = i.id
        ON CONFLICT DO NOTHING
    ), lots AS (
        INSERT INTO lot (tenant_id, id, material, site, first_seen)
        SELECT DISTINCT ON (lot) p_tenant, lot, material, site, event_time
          FROM (SELECT lot, material, site, event_time FROM ins
                UNION ALL SELECT lot, material, site, event_time FROM outs) x
        ON CONFLICT DO NOTHING
    -- Inputs roll up as type transformed_in, outputs as transformed_out with the fate as
    -- counterpart, so recyclers' yields read from roll-ups like every other flow; the same rows
    -- go to their months (140: no trigger on rollup_day's inserts and updates).
    ), agg AS (
        SELECT p_tenant AS tenant_id, (f.event_time AT TIME ZONE tz.time_zone)::date AS day,
               coalesce(f.site, '') AS site, f.counterpart, f.material, ''::text AS product,
               f.type, ''::text AS operation, ''::text AS ewc, false AS hazardous,
               sum(f.kg) AS kg, count(*) AS events, 0::float8 AS value_declared,
               sum(f.kg) AS kg_no_value,
               count(*) FILTER (WHERE f.recorded_time > f.event_time + interval '1 day') AS late
          FROM (SELECT site, event_time, recorded_time, material, kg, '' AS counterpart,
                       'transformed_in' AS type FROM ins
                UNION ALL
                SELECT site, event_time, recorded_time, material, kg, fate, 'transformed_out'
                  FROM outs) f,
               (SELECT time_zone FROM tenant WHERE id = p_tenant) tz
         GROUP BY 1, 2, 3, 4, 5, 7
    ), days AS (
        INSERT INTO rollup_day AS r SELECT * FROM agg
        ON CONFLICT (tenant_id, day, site, counterpart, material, product, type, operation, ewc)
        DO UPDATE SET kg = r.kg + EXCLUDED.kg, events = r.events + EXCLUDED.events,
                      kg_no_value = r.kg_no_value + EXCLUDED.kg_no_value,
                      late = r.late + EXCLUDED.late
    )
    SELECT circa_rollup_month_apply('{}', ARRAY(SELECT a::rollup_day FROM agg a))
$$;
$f$;

    -- 012's take-back of a corrected transformation; the matched rows' months by the same amounts.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_transformed_rollup_sub(p_tenant text, p_id text) RETURNS void
LANGUAGE sql AS $$
    WITH t AS (
        SELECT e.site, e.event_time, e.recorded_time, convert_from(e.canon, 'UTF8')::jsonb AS doc
          FROM event e WHERE e.tenant_id = p_tenant AND e.id = p_id
    ), f AS (
        SELECT t.site, t.event_time, t.recorded_time, i->>'material' AS material, '' AS counterpart,
               'transformed_in' AS type, circa_kg(p_tenant, i->'quantity', i->>'material') AS kg
          FROM t, jsonb_array_elements(t.doc->'inputs') i
        UNION ALL
        SELECT t.site, t.event_time, t.recorded_time, o->>'material', coalesce(o->>'fate', ''),
               'transformed_out', circa_kg(p_tenant, o->'quantity', o->>'material')
          FROM t, jsonb_array_elements(t.doc->'outputs') o
    ), taken AS (
        UPDATE rollup_day r
           SET kg = r.kg - s.kg, events = r.events - s.n, kg_no_value = r.kg_no_value - s.kg,
               late = r.late - s.late
          FROM (SELECT (f.event_time AT TIME ZONE tz.time_zone)::date AS day,
                       coalesce(f.site, '') AS site, f.counterpart, f.material, f.type,
                       sum(f.kg) AS kg, count(*) AS n,
                       count(*) FILTER (WHERE f.recorded_time > f.event_time + interval '1 day') AS late
                  FROM f, (SELECT time_zone FROM tenant WHERE id = p_tenant) tz
                 GROUP BY 1, 2, 3, 4, 5) s
         WHERE r.tenant_id = p_tenant AND r.day = s.day AND r.site = s.site
           AND r.counterpart = s.counterpart AND r.material = s.material AND r.product = ''
           AND r.type = s.type AND r.operation = '' AND r.ewc = ''
        RETURNING ROW(r.tenant_id, r.day, r.site, r.counterpart, r.material, r.product, r.type,
                      r.operation, r.ewc, r.hazardous, -s.kg, -s.n, 0::float8, -s.kg,
                      -s.late)::rollup_day AS d
    )
    SELECT circa_rollup_month_apply('{}', ARRAY(SELECT d FROM taken))
$$;
$f$;

    -- 102's body; the item_day deltas also go to the grids (112, 115).
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_item_day_add(p_tenant text, p_items text[], p_sign integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_tz text;
    v_rows item_day[];
BEGIN
    IF p_items IS NULL OR cardinality(p_items) = 0 THEN
        RETURN;
    END IF;
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    v_rows := ARRAY(
        SELECT ROW(p_tenant, x.kind, x.day, x.d2, x.d3, x.product, x.v, p_sign * count(*), 0,
                   p_sign * sum(x.v))::item_day
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
         GROUP BY x.kind, x.day, x.d2, x.d3, x.product, x.v);
    IF cardinality(v_rows) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO item_day AS r SELECT * FROM unnest(v_rows)
    ON CONFLICT (tenant_id, kind, day, d2, d3, product, v)
    DO UPDATE SET n = r.n + EXCLUDED.n, vsum = r.vsum + EXCLUDED.vsum;
    PERFORM circa_item_month_apply('{}', v_rows);

    INSERT INTO use_day_bucket AS r (tenant_id, month, product, b, n, vsum)
    SELECT p_tenant, date_trunc('month', x.day)::date, x.product, floor(x.v),
           p_sign * count(*), p_sign * sum(x.v)
      FROM (SELECT (l.ended AT TIME ZONE v_tz)::date AS day, coalesce(l.product, '') AS product,
                   extract(epoch FROM l.ended - l.started) / 86400 AS v
              FROM lifecycle l
             WHERE l.tenant_id = p_tenant AND l.item = ANY (p_items) AND l.ended IS NOT NULL) x
     GROUP BY 2, 3, 4
    ON CONFLICT (tenant_id, month, product, b)
    DO UPDATE SET n = r.n + EXCLUDED.n, vsum = r.vsum + EXCLUDED.vsum;
END $$;
$f$;

    -- 019's body; the fate rows also go to item_month.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_item_fate_add(p_tenant text, p_ids text[], p_sign integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_rows item_day[];
BEGIN
    IF p_ids IS NULL OR cardinality(p_ids) = 0 THEN
        RETURN;
    END IF;
    v_rows := ARRAY(
        SELECT ROW(p_tenant, e.type, (e.event_time AT TIME ZONE t.time_zone)::date,
                   'infinity'::date, 'infinity'::date, coalesce(e.product, i.product, ''), 0,
                   p_sign * count(*), p_sign * coalesce(sum(e.quantity_kg), 0), 0)::item_day
          FROM event e
          JOIN tenant t ON t.id = p_tenant
          LEFT JOIN item i ON i.tenant_id = p_tenant AND i.id = e.item
         WHERE e.tenant_id = p_tenant AND e.id = ANY (p_ids) AND e.item IS NOT NULL
           AND e.type IN ('recycled', 'energy_recovered', 'disposed')
         GROUP BY e.type, (e.event_time AT TIME ZONE t.time_zone)::date,
                  coalesce(e.product, i.product, ''));
    IF cardinality(v_rows) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO item_day AS r SELECT * FROM unnest(v_rows)
    ON CONFLICT (tenant_id, kind, day, d2, d3, product, v)
    DO UPDATE SET n = r.n + EXCLUDED.n, kg = r.kg + EXCLUDED.kg;
    PERFORM circa_item_month_apply('{}', v_rows);
END $$;
$f$;

    -- 111's trigger function with UPDATE as a statement trigger like INSERT and DELETE.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_interim_day_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM circa_interim_day_apply('{}', ARRAY(SELECT r::interim_event FROM interim_new r));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM circa_interim_day_apply(ARRAY(SELECT r::interim_event FROM interim_old r),
                                        ARRAY(SELECT r::interim_event FROM interim_new r));
    ELSE
        PERFORM circa_interim_day_apply(ARRAY(SELECT r::interim_event FROM interim_old r), '{}');
    END IF;
    RETURN NULL;
END $$;
$f$;
    EXECUTE $f$
CREATE TRIGGER interim_day_upd AFTER UPDATE ON interim_event
    REFERENCING OLD TABLE AS interim_old NEW TABLE AS interim_new
    FOR EACH STATEMENT EXECUTE FUNCTION circa_interim_day_sync();
$f$;

    -- 116's circa_interim_derive, its updates of next_time in one statement.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION public.circa_interim_derive(p_tenant text, p_first bigint, p_last bigint, p_kinds integer)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_lots text[];
    v_interim text[];
    v_transformed text[];
    v_corrected text[];
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
      FROM (SELECT lot, id, operation, type, corrects FROM event
             WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
             ORDER BY seq LIMIT p_last - p_first + 1) g;
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
        INSERT INTO interim_event (tenant_id, id, seq, lot, event_time, site, material, product, kg)
        SELECT p_tenant, e.id, e.seq, e.lot, e.event_time, e.site, e.material, e.product,
               e.quantity_kg
          FROM event e
         WHERE e.tenant_id = p_tenant AND e.id = ANY (v_interim)
           AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                            AND c.corrected = e.id)
        ON CONFLICT DO NOTHING;
    END IF;
    IF v_transformed IS NOT NULL THEN
        v_lots := v_lots || ARRAY(SELECT input_lot FROM lot_link
                                   WHERE tenant_id = p_tenant AND event_id = ANY (v_transformed));
    END IF;
    IF v_lots IS NULL OR cardinality(v_lots) = 0 THEN
        RETURN;
    END IF;
    -- Interim events of these lots may have moved on (or back, after a correction): their
    -- next times one event at a time (circa_interim_next reads event, correction and lot_link,
    -- never interim_event), then one UPDATE of those that changed, so interim_day's statement
    -- trigger sees them all at once. The UPDATE finds its rows by the ctids the loop read: by
    -- id (= ANY, or a join with unnest()) a table without statistics was planned as a scan of
    -- the tenant's whole interim_event (8 ms per group at 100,000 events, growing with it).
    -- A row updated meanwhile by another transaction has another ctid: those are updated by key.
    DECLARE
        j record;
        v_next timestamptz;
        v_tids tid[] := '{}';
        v_ids text[] := '{}';
        v_nexts timestamptz[] := '{}';
        v_n bigint;
    BEGIN
        FOR j IN SELECT x.ctid AS tid, x.id, x.seq, x.lot, x.event_time, x.next_time
                   FROM interim_event x
                  WHERE x.tenant_id = p_tenant AND x.lot = ANY (v_lots) LOOP
            v_next := circa_interim_next(p_tenant, j.id, j.seq, j.lot, j.event_time);
            IF v_next IS DISTINCT FROM j.next_time THEN
                v_tids := v_tids || j.tid;
                v_ids := v_ids || j.id;
                v_nexts := v_nexts || v_next;
            END IF;
        END LOOP;
        IF cardinality(v_ids) = 0 THEN
            RETURN;
        END IF;
        UPDATE interim_event i SET next_time = v_nexts[array_position(v_ids, i.id)]
         WHERE i.ctid = ANY (v_tids) AND i.tenant_id = p_tenant AND i.id = ANY (v_ids);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        IF v_n < cardinality(v_ids) THEN
            FOR j IN SELECT x.id, x.next_time FROM unnest(v_ids, v_nexts) AS x(id, next_time) LOOP
                UPDATE interim_event SET next_time = j.next_time
                 WHERE tenant_id = p_tenant AND id = j.id
                   AND next_time IS DISTINCT FROM j.next_time;
            END LOOP;
        END IF;
    END;
END $function$
$f$;
END $do$;
