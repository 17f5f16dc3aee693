-- /v1/metrics from the figures 015_fast_derive.sql keeps current, not from events.

-- Mass of events whose last operation in [from, to) is interim: the interim events of the
-- period whose lot had no later flow or transformation before `to` (interim_event.next_time).
-- An interim event without a lot cannot be followed and counts as still interim.
-- Two index reads: the events still interim now (no lot, or nothing later: small), and those
-- whose lot moved on only at or after `to` (next_time >= to: few for a recent `to`).
CREATE INDEX interim_event_pending ON interim_event (tenant_id, event_time)
    WHERE lot IS NULL OR next_time IS NULL;
CREATE INDEX interim_event_next ON interim_event (tenant_id, next_time, event_time);

CREATE OR REPLACE FUNCTION circa_interim(p_tenant text, p_from timestamptz, p_to timestamptz,
                                         p_party text, p_site text, p_material text,
                                         p_product text, OUT kg double precision,
                                         OUT events bigint, OUT untracked_kg double precision)
LANGUAGE plpgsql STABLE AS $$
BEGIN
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

-- Declared process losses (kg) of the transformations at in-scope sites in [from, to): the
-- period is whole local days (circa_days), so the daily loss_day rows sum to it exactly.
CREATE OR REPLACE FUNCTION circa_losses(p_tenant text, p_from timestamptz, p_to timestamptz,
                                        p_party text, p_site text) RETURNS double precision
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(l.kg), 0)
      FROM loss_day l, (SELECT time_zone FROM tenant WHERE id = p_tenant) t
     WHERE l.tenant_id = p_tenant
       AND l.day >= (p_from AT TIME ZONE t.time_zone)::date
       AND l.day < (p_to AT TIME ZONE t.time_zone)::date
       AND (p_site IS NULL OR l.site = p_site)
       AND (p_party IS NULL OR EXISTS (SELECT 1 FROM site s WHERE s.tenant_id = p_tenant
                                        AND s.code = l.site AND s.party = p_party))
$$;

-- The interim derive step of 015, reading the group once through event_seq (the planner took
-- event_time or partial indexes over the whole tenant for the group's seq range).
-- interim_event after a group (seq p_first..p_last) whose lineage and corrections are applied.
-- The group is read once through event_seq (arrays of what matters), everything else by key:
-- predicates on the group's rows would tempt the planner into partial indexes over the tenant.
CREATE OR REPLACE FUNCTION circa_interim_derive(p_tenant text, p_first bigint, p_last bigint,
                                     p_kinds integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_lots text[];
    v_interim text[];
    v_transformed text[];
    v_corrected text[];
BEGIN
    SELECT array_agg(DISTINCT lot) FILTER (WHERE lot IS NOT NULL),
           array_agg(id) FILTER (WHERE operation IN ('R12', 'R13', 'D13', 'D14', 'D15')),
           array_agg(id) FILTER (WHERE type = 'transformed'),
           array_agg(corrects) FILTER (WHERE type = 'corrected')
      INTO v_lots, v_interim, v_transformed, v_corrected
      FROM event   -- a row comparison only event_seq can serve (event_time looked cheaper)
     WHERE (tenant_id, seq) >= (p_tenant, p_first) AND (tenant_id, seq) <= (p_tenant, p_last);
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
    UPDATE interim_event i SET next_time = n.t
      FROM (SELECT j.id, circa_interim_next(p_tenant, j.id, j.seq, j.lot, j.event_time) AS t
              FROM interim_event j
             WHERE j.tenant_id = p_tenant AND j.lot = ANY (v_lots)) n
     WHERE i.tenant_id = p_tenant AND i.id = n.id AND i.next_time IS DISTINCT FROM n.t;
END $$;
