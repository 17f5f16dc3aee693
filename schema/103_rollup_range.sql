-- The derive steps read a group's events through plain event_seq ranges again. 019 wrote the range
-- as a row comparison, (tenant_id, seq) >= (p_tenant, p_first): the planner then derives only
-- tenant_id bounds from it and walks the event_time index over the tenant's whole ledger, so
-- every group cost more as the ledger grew (single events fell from 17,000/s to 531/s after
-- 240,000 events). tenant_id = … AND seq BETWEEN … is an event_seq range in every plan.
-- circa_rollup_add's corrections (p_only_ids) first find the seq range of their few ids; the
-- other derive steps below are unchanged but for their range predicates.
-- On Citus, 100_citus_compat2 keeps its own version (router SELECT, then INSERT … VALUES).
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_rollup_add(p_tenant text, p_first bigint, p_last bigint,
                                            p_only_ids text[], p_sign double precision) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_lo bigint := p_first;
    v_hi bigint := p_last;
BEGIN
    IF p_only_ids IS NOT NULL THEN
        SELECT min(seq), max(seq) INTO v_lo, v_hi
          FROM event WHERE tenant_id = p_tenant AND id = ANY (p_only_ids);
        IF v_lo IS NULL THEN
            RETURN;
        END IF;
    END IF;
    INSERT INTO rollup_day AS r
    SELECT e.tenant_id, (e.event_time AT TIME ZONE t.time_zone)::date, coalesce(e.site, ''),
           coalesce(CASE WHEN e.type = 'shipped' THEN e.to_site
                         WHEN e.type IN ('received', 'collected') THEN e.from_site END, ''),
           coalesce(e.material, ''), coalesce(e.product, ''), e.type,
           coalesce(e.operation, ''), coalesce(e.ewc, ''), coalesce(w.hazardous, false),
           p_sign * sum(coalesce(e.quantity_kg, 0)), (p_sign * count(*))::bigint,
           p_sign * sum(coalesce(e.value_amount, 0)),
           p_sign * sum(CASE WHEN e.value_amount IS NULL THEN coalesce(e.quantity_kg, 0) ELSE 0 END),
           (p_sign * count(*) FILTER (WHERE e.recorded_time > e.event_time + interval '1 day'))::bigint
      FROM event e
      JOIN tenant t ON t.id = e.tenant_id
      LEFT JOIN ewc w ON w.code = e.ewc
     WHERE e.tenant_id = p_tenant AND e.seq BETWEEN v_lo AND v_hi
       AND (p_only_ids IS NULL OR e.id = ANY (p_only_ids))
       AND e.type NOT IN ('corrected', 'measured', 'observed', 'transformed')
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
    ON CONFLICT (tenant_id, day, site, counterpart, material, product, type, operation, ewc)
    DO UPDATE SET kg = r.kg + EXCLUDED.kg, events = r.events + EXCLUDED.events,
                  value_declared = r.value_declared + EXCLUDED.value_declared,
                  kg_no_value = r.kg_no_value + EXCLUDED.kg_no_value,
                  late = r.late + EXCLUDED.late;
END $$;
$f$;
    -- The derive steps for transformations, lots, items, corrections and interim operations
    -- (as 019/100/102 left them) with the same change: their group reads become event_seq ranges.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION public.circa_derive_group(p_tenant text, p_first bigint, p_last bigint, p_kinds integer)
 RETURNS void
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_hashjoin TO 'off'
 SET enable_mergejoin TO 'off'
AS $function$
DECLARE
    e record;
    v_lenient boolean := false;
    v_items text[];
    v_retiring text[];
    v_corrects text[];
    v_by text[];
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
        PERFORM circa_item_day_add(p_tenant, v_items, -1);
        FOR e IN SELECT id, type, item, product, event_time
                   FROM event
                  WHERE tenant_id = p_tenant
                    AND seq BETWEEN p_first AND p_last
                    AND item IS NOT NULL AND type <> 'corrected' ORDER BY seq LOOP
            PERFORM circa_apply_item(p_tenant, v_lenient, e.id, e.type, e.item, e.product,
                                     e.event_time);
        END LOOP;
        PERFORM circa_item_day_add(p_tenant, v_items, 1);
        PERFORM circa_item_fate_add(p_tenant, v_retiring, 1);
    END IF;
END $function$
$f$;
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
      FROM event   -- a row comparison only event_seq can serve (event_time looked cheaper)
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
                        AND (p_only_ids IS NULL AND e.tenant_id = p_tenant
                                                AND e.seq BETWEEN p_first AND p_last
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
        END $function$
$f$;
END $do$;
