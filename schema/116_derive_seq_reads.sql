-- The derive steps read their group through event_seq whatever the planner knows of the tenant,
-- as 113 did for circa_rollup_add (docs/PERFORMANCE.md, Metrics, 113 and 116). For a tenant
-- without statistics yet, `tenant_id = … AND seq BETWEEN …` is estimated at one row on
-- event_seq and event_time alike, and a custom plan that takes event_time reads the tenant's
-- whole ledger for every group. In seq order with a LIMIT of the range's size (seqs are unique
-- per tenant, so it bounds nothing away) only event_seq gives the order without a sort.
-- (circa_interim_derive keeps 103's loop over the group's interim events: one UPDATE … FROM
-- with circa_interim_next inlined was planned far worse, 2.9 s → 58.7 s per 50,000 events.)
-- Plain PostgreSQL only: on Citus, 105_citus_one_phase keeps its own versions.
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
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
    -- Interim events of these lots may have moved on (or back, after a correction).
    DECLARE
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
    END;
END $function$
$f$;
    EXECUTE $f$
CREATE OR REPLACE FUNCTION public.circa_loss_add(p_tenant text, p_first bigint, p_last bigint, p_only_ids text[], p_sign double precision)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
                        AND e.id = ANY (p_only_ids)
                     UNION ALL
                     SELECT g.event_time, g.site, convert_from(g.canon, 'UTF8')::jsonb->'loss'
                       FROM (SELECT event_time, site, canon, type FROM event
                              WHERE p_only_ids IS NULL AND tenant_id = p_tenant
                                AND seq BETWEEN p_first AND p_last
                              ORDER BY seq LIMIT greatest(p_last - p_first + 1, 0)) g
                      WHERE g.type = 'transformed' LOOP
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
        END $function$
$f$;
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
    )
    -- Inputs roll up as type transformed_in, outputs as transformed_out with the fate as
    -- counterpart, so recyclers' yields read from roll-ups like every other flow.
    INSERT INTO rollup_day AS r
    SELECT p_tenant, (f.event_time AT TIME ZONE tz.time_zone)::date, coalesce(f.site, ''),
           f.counterpart, f.material, '', f.type, '', '', false, sum(f.kg), count(*), 0,
           sum(f.kg), count(*) FILTER (WHERE f.recorded_time > f.event_time + interval '1 day')
      FROM (SELECT site, event_time, recorded_time, material, kg, '' AS counterpart,
                   'transformed_in' AS type FROM ins
            UNION ALL
            SELECT site, event_time, recorded_time, material, kg, fate, 'transformed_out'
              FROM outs) f,
           (SELECT time_zone FROM tenant WHERE id = p_tenant) tz
     GROUP BY 1, 2, 3, 4, 5, 7
    ON CONFLICT (tenant_id, day, site, counterpart, material, product, type, operation, ewc)
    DO UPDATE SET kg = r.kg + EXCLUDED.kg, events = r.events + EXCLUDED.events,
                  kg_no_value = r.kg_no_value + EXCLUDED.kg_no_value, late = r.late + EXCLUDED.late
$$;
$f$;
END $do$;
