-- The item roll-ups of a group are written as one difference (docs/PERFORMANCE.md, Metrics,
-- "143"). circa_derive_group took the rows of every item the group touches out of item_day
-- (circa_item_day_add with -1: all lives of the item), applied the item events, and put them
-- back (+1): for an item with several lives, one event rewrote every row of every life twice,
-- though only the last life changed. When a park's events arrive in time order, an item's
-- events fall into many groups, and on the demo park this step became the largest roll-up
-- cost (16.8 µs per event). Now the rows are read before and after (circa_item_day_rows), and
-- circa_item_day_apply writes new − old key by key, leaving out keys that did not change: the
-- same sums in item_day, item_month, use_day_daily, use_day_fine and use_day_bucket, without
-- the writes that cancel out. circa_item_day_add (the rebuild's: whole items) now calls the two.
-- Plain PostgreSQL only: on Citus, 131's circa_derive_group keeps 105's router steps.
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    -- The L, E and M rows (102/140's definitions) of the items' lives as they are now.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_item_day_rows(p_tenant text, p_items text[]) RETURNS item_day[]
LANGUAGE plpgsql AS $$
DECLARE
    v_tz text;
BEGIN
    IF p_items IS NULL OR cardinality(p_items) = 0 THEN
        RETURN '{}';
    END IF;
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    RETURN ARRAY(
        SELECT ROW(p_tenant, x.kind, x.day, x.d2, x.d3, x.product, x.v, count(*), 0,
                   sum(x.v))::item_day
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
END $$;
$f$;

    -- new − old per key into item_day and its grids (item_month, use_day_daily, use_day_fine
    -- through circa_item_month_apply) and use_day_bucket. A key whose count and sums are equal
    -- in both is not written: an unchanged life gives the same rows, computed the same way.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_item_day_apply(p_tenant text, p_old item_day[], p_new item_day[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_rows item_day[];
BEGIN
    v_rows := ARRAY(
        SELECT ROW(p_tenant, x.kind, x.day, x.d2, x.d3, x.product, x.v, sum(x.n)::bigint,
                   sum(x.kg), sum(x.vsum))::item_day
          FROM (SELECT r.kind, r.day, r.d2, r.d3, r.product, r.v, -r.n AS n, -r.kg AS kg,
                       -r.vsum AS vsum
                  FROM unnest(p_old) r
                UNION ALL
                SELECT r.kind, r.day, r.d2, r.d3, r.product, r.v, r.n, r.kg, r.vsum
                  FROM unnest(p_new) r) x
         GROUP BY x.kind, x.day, x.d2, x.d3, x.product, x.v
        HAVING sum(x.n) <> 0 OR sum(x.kg) <> 0 OR sum(x.vsum) <> 0);
    IF cardinality(v_rows) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO item_day AS r SELECT * FROM unnest(v_rows)
    ON CONFLICT (tenant_id, kind, day, d2, d3, product, v)
    DO UPDATE SET n = r.n + EXCLUDED.n, kg = r.kg + EXCLUDED.kg, vsum = r.vsum + EXCLUDED.vsum;
    PERFORM circa_item_month_apply('{}', v_rows);
    INSERT INTO use_day_bucket AS b (tenant_id, month, product, b, n, vsum)
    SELECT p_tenant, date_trunc('month', r.day)::date, r.product, floor(r.v), sum(r.n),
           sum(r.vsum)
      FROM unnest(v_rows) r
     WHERE r.kind = 'E'
     GROUP BY 2, 3, 4
    ON CONFLICT (tenant_id, month, product, b)
    DO UPDATE SET n = b.n + EXCLUDED.n, vsum = b.vsum + EXCLUDED.vsum;
END $$;
$f$;

    -- Whole items added (+1, the rebuild) or taken back (-1) through the same two functions, so
    -- the rows are defined in one place.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_item_day_add(p_tenant text, p_items text[], p_sign integer)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_sign > 0 THEN
        PERFORM circa_item_day_apply(p_tenant, '{}', circa_item_day_rows(p_tenant, p_items));
    ELSE
        PERFORM circa_item_day_apply(p_tenant, circa_item_day_rows(p_tenant, p_items), '{}');
    END IF;
END $$;
$f$;

    -- 120's circa_derive_group with the item step above, and 142's settings.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION public.circa_derive_group(p_tenant text, p_first bigint, p_last bigint, p_kinds integer)
 RETURNS void
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_hashjoin TO 'off'
 SET enable_mergejoin TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
 SET jit TO 'off'
AS $function$
DECLARE
    e record;
    v_lenient boolean := false;
    v_items text[];
    v_retiring text[];
    v_corrects text[];
    v_by text[];
    v_item_rows item_day[];
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
        INSERT INTO lot (tenant_id, id, material, site, first_seen)
        SELECT DISTINCT ON (lot) p_tenant, lot, material, site, event_time
          FROM event
         WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
           AND lot IS NOT NULL
         ORDER BY lot, seq
        ON CONFLICT DO NOTHING;
    END IF;
    IF p_kinds & 8 <> 0 THEN
        FOR e IN SELECT id, corrects, convert_from(canon, 'UTF8')::jsonb->'replacement'->>'id' AS repl
                   FROM event
                  WHERE tenant_id = p_tenant
                    AND seq BETWEEN p_first AND p_last
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
        v_item_rows := circa_item_day_rows(p_tenant, v_items);
        FOR e IN SELECT id, type, item, product, event_time
                   FROM event
                  WHERE tenant_id = p_tenant
                    AND seq BETWEEN p_first AND p_last
                    AND item IS NOT NULL AND type <> 'corrected' ORDER BY seq LOOP
            PERFORM circa_apply_item(p_tenant, v_lenient, e.id, e.type, e.item, e.product,
                                     e.event_time);
        END LOOP;
        PERFORM circa_item_day_apply(p_tenant, v_item_rows, circa_item_day_rows(p_tenant, v_items));
        PERFORM circa_item_fate_add(p_tenant, v_retiring, 1);
    END IF;
    PERFORM circa_consignment_derive(p_tenant, p_first, p_last, p_kinds);
END $function$

$f$;
END $do$;
