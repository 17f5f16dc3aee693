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
