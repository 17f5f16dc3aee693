-- The interim step of the derive (016) returns at once for groups that hold nothing it reads:
-- no lot, transformation, correction or interim operation (circad sets bit 16 for the last).
-- Plain waste and flow events, most of the traffic, then cost it nothing.

CREATE OR REPLACE FUNCTION circa_interim_derive(p_tenant text, p_first bigint, p_last bigint,
                                     p_kinds integer) RETURNS void
LANGUAGE plpgsql AS $$
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
