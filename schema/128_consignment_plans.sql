-- The consignment step of 120 without the reads that grew with the tenant
-- (docs/PERFORMANCE.md, Reports, "128"). Plans are generic and made once per circad session
-- (120), so a plan made while consignment was young stays for the whole load: on a fresh
-- database (no statistics yet) the planner saw a ten-page table, found consignment_time
-- (tenant_id, …) as cheap as the primary key, and
--   * circa_consignment_apply read every current row of the tenant (consignment_time by
--     tenant_id) to find the group's ~130 ids, and again to close the changed versions;
--   * circa_consignment_rows looked for a collection's documenting shipment by document through
--     consignment_time by tenant_id too — for every collection, with or without a document.
-- Each group's step therefore cost in proportion to the tenant's consignments (30 ms for the
-- first groups of a fresh demo tenant, 290 ms by 30,000 events). Now the current rows are read
-- one id at a time (OFFSET 0 keeps each a lookup by key, as circa_consignment_rows reads its
-- events), the changed versions are closed by the ctid read in the same statement (a TID scan,
-- whatever the statistics), and a consignment without a document looks for no receipt or
-- shipment by document (NULL matches nothing: the same rows).
-- Also: the event's and the receipt's canonical JSON are parsed once per row. 120's
-- LATERAL (SELECT convert_from(…)::jsonb AS doc) was pulled up into the query, so every
-- reference to doc (a dozen per row, and the lookups' keys) parsed the JSON again.
-- Plain PostgreSQL only: on Citus 131's apply and 120's circa_consignment_rows stay.

DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_consignment_rows(p_tenant text, p_ids text[], p_type text)
RETURNS SETOF consignment LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_tz text;
    c consignment;
    v_q jsonb;
    v_material text;
BEGIN
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    FOR c IN
        WITH t AS (
            SELECT e.id, e.seq, e.type, e.event_time, e.material, e.lot, nullif(e.ewc, '') AS ewc,
                   e.quantity_kg, e.doc,
                   CASE WHEN e.type = 'shipped' THEN e.site ELSE e.from_site END AS origin,
                   CASE WHEN e.type = 'shipped' THEN e.to_site ELSE e.site END AS receiver,
                   e.doc->>'document' AS document
              FROM unnest(p_ids) i(id),
                   LATERAL (SELECT x.*, convert_from(x.canon, 'UTF8')::jsonb AS doc
                              FROM event x
                             WHERE x.tenant_id = p_tenant AND x.id = i.id AND x.type = p_type
                               AND NOT EXISTS (SELECT 1 FROM correction k
                                                WHERE k.tenant_id = p_tenant
                                                  AND k.corrected = x.id)
                            OFFSET 0) e
        )
        SELECT p_tenant, t.id, NULL::bigint, NULL::bigint, t.seq, t.type, t.event_time,
               (t.event_time AT TIME ZONE v_tz)::date, t.doc->>'time', t.origin,
               t.receiver, t.material, t.lot,
               coalesce(t.ewc, wg.ewc), CASE WHEN t.ewc IS NOT NULL THEN 'event'
                                             WHEN wg.ewc IS NOT NULL THEN 'lot' END,
               t.quantity_kg, t.doc->'quantity'->>'basis', t.document, t.doc->>'carrier',
               t.doc->'transport',
               CASE WHEN jsonb_typeof(t.doc->'transport') = 'array'
                    THEN ARRAY(SELECT l->>'mode' FROM jsonb_array_elements(t.doc->'transport') l) END,
               t.doc->'packaging',
               coalesce(t.doc->>'planned_operation', r.operation, tr.operation),
               CASE WHEN t.doc ? 'planned_operation' THEN 'planned_operation'
                    WHEN r.operation IS NOT NULL THEN 'receipt'
                    WHEN tr.operation IS NOT NULL THEN 'treatment' END,
               tr.id, r.id, r.doc->>'time', r.doc->>'acceptance', r.quantity_kg,
               CASE WHEN r.doc->>'acceptance' = 'refused' THEN r.quantity_kg
                    WHEN r.doc->>'acceptance' = 'accepted' THEN 0 END,
               db.event_id
          FROM t
          -- A shipment's receipt: the receiver's first (by seq) from the sender with the same lot
          -- or the same document.
          LEFT JOIN LATERAL (
              SELECT m.id FROM (SELECT r1.id, r1.seq FROM event r1
                                 WHERE r1.tenant_id = p_tenant AND r1.lot = t.lot
                                   AND r1.type = 'received' AND r1.site = t.receiver
                                   AND r1.from_site = t.origin
                                UNION ALL
                                SELECT r2.event_id, r2.seq FROM receipt_doc r2
                                 WHERE t.document IS NOT NULL
                                   AND r2.tenant_id = p_tenant AND r2.document = t.document
                                   AND r2.site = t.receiver AND r2.from_site = t.origin) m
               WHERE t.type = 'shipped'
                 AND NOT EXISTS (SELECT 1 FROM correction k WHERE k.tenant_id = p_tenant
                                  AND k.corrected = m.id)
               ORDER BY m.seq LIMIT 1) rm ON true
          -- The receipt itself, by its key (joined inside the lookup above, the planner walked
          -- the tenant's events for it when their statistics were stale).
          LEFT JOIN LATERAL (
              SELECT x.id, nullif(x.operation, '') AS operation, x.quantity_kg, x.material,
                     convert_from(x.canon, 'UTF8')::jsonb AS doc
                FROM event x WHERE x.tenant_id = p_tenant AND x.id = rm.id OFFSET 0) r ON true
          -- No EWC code on the consignment: the one its lot was generated with.
          LEFT JOIN LATERAL (
              SELECT nullif(g.ewc, '') AS ewc FROM event g
               WHERE t.ewc IS NULL AND g.tenant_id = p_tenant AND g.lot = t.lot
                 AND g.type = 'waste_generated'
                 AND NOT EXISTS (SELECT 1 FROM correction k WHERE k.tenant_id = p_tenant
                                  AND k.corrected = g.id)
               ORDER BY g.seq LIMIT 1) wg ON true
          -- Neither the consignment nor its receipt names the operation: what the receiver did to
          -- the lot first.
          LEFT JOIN LATERAL (
              SELECT x.id, x.operation FROM event x
               WHERE NOT t.doc ? 'planned_operation' AND r.operation IS NULL
                 AND x.tenant_id = p_tenant AND x.lot = t.lot AND x.site = t.receiver
                 AND x.type IN ('recycled', 'energy_recovered', 'disposed')
                 AND NOT EXISTS (SELECT 1 FROM correction k WHERE k.tenant_id = p_tenant
                                  AND k.corrected = x.id)
               ORDER BY x.seq LIMIT 1) tr ON true
          -- A collection that a shipment from its sender to its collector (same lot or document)
          -- already documents is not a consignment of its own.
          LEFT JOIN LATERAL (
              SELECT s.event_id FROM (
                  SELECT s1.event_id, s1.seq FROM consignment s1
                   WHERE s1.tenant_id = p_tenant AND s1.lot = t.lot AND s1.valid_to IS NULL
                     AND s1.type = 'shipped' AND s1.origin = t.origin AND s1.receiver = t.receiver
                  UNION ALL
                  SELECT s2.event_id, s2.seq FROM consignment s2
                   WHERE t.document IS NOT NULL
                     AND s2.tenant_id = p_tenant AND s2.document = t.document
                     AND s2.valid_to IS NULL AND s2.type = 'shipped' AND s2.origin = t.origin
                     AND s2.receiver = t.receiver) s
               WHERE t.type = 'collected'
               ORDER BY s.seq LIMIT 1) db ON true

    LOOP
        IF c.acceptance = 'partial' THEN
            SELECT convert_from(x.canon, 'UTF8')::jsonb->'refused_quantity', x.material
              INTO v_q, v_material
              FROM event x WHERE x.tenant_id = p_tenant AND x.id = c.receipt;
            c.refused_kg := circa_kg(p_tenant, v_q, v_material);
        END IF;
        RETURN NEXT c;
    END LOOP;
END $$;
$f$;
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_consignment_apply(p_tenant text, p_ids text[], p_type text,
                                                   p_block bigint) RETURNS void
LANGUAGE sql
SET enable_seqscan = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
    WITH n AS (
        SELECT r AS c FROM circa_consignment_rows(p_tenant, p_ids, p_type) r
    ), cur AS (
        SELECT c.c, c.tid FROM unnest(p_ids) i(id),
               LATERAL (SELECT x AS c, x.ctid AS tid FROM consignment x
                         WHERE x.tenant_id = p_tenant AND x.event_id = i.id
                           AND x.valid_to IS NULL AND x.type = p_type OFFSET 0) c
    ), d AS (
        SELECT n.c AS new, cur.c AS old, cur.tid
          FROM n FULL JOIN cur ON (cur.c).event_id = (n.c).event_id
         WHERE circa_consignment_differs(n.c, cur.c)
    ), closed AS (
        UPDATE consignment c SET valid_to = p_block
         WHERE c.ctid = ANY (ARRAY(SELECT tid FROM d WHERE tid IS NOT NULL))
    ), delta AS (
        SELECT (old).*, -1 AS sign FROM d WHERE (old).event_id IS NOT NULL
        UNION ALL
        SELECT (new).*, 1 FROM d WHERE (new).event_id IS NOT NULL
    ), rolled AS (
        INSERT INTO consignment_day AS r
        SELECT p_tenant, day, origin, coalesce(ewc, ''), coalesce(receiver, ''),
               coalesce(operation, ''), coalesce(basis, ''), coalesce(acceptance, ''),
               document IS NOT NULL, packaging IS NOT NULL, coalesce(packaging->>'type', ''),
               coalesce(packaging->>'physical_form', ''), coalesce(modes, '{}'),
               sum(sign), sum(sign * coalesce(kg, 0)), sum(sign * coalesce(refused_kg, 0)),
               sum(sign * CASE WHEN jsonb_typeof(packaging->'count') = 'number'
                               THEN (packaging->>'count')::float8 ELSE 0 END)
          FROM delta
         WHERE documented_by IS NULL AND origin IS NOT NULL
         GROUP BY 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
        ON CONFLICT (tenant_id, day, origin, ewc, receiver, operation, basis, acceptance,
                     documented, packed, ptype, pform, modes)
        DO UPDATE SET n = r.n + EXCLUDED.n, kg = r.kg + EXCLUDED.kg,
                      refused_kg = r.refused_kg + EXCLUDED.refused_kg,
                      packages = r.packages + EXCLUDED.packages
    )
    INSERT INTO consignment
    SELECT (new).tenant_id, (new).event_id, p_block, NULL, (new).seq, (new).type,
           (new).event_time, (new).day, (new).time, (new).origin, (new).receiver,
           (new).material, (new).lot, (new).ewc, (new).ewc_from, (new).kg, (new).basis,
           (new).document, (new).carrier, (new).transport, (new).modes, (new).packaging,
           (new).operation, (new).operation_from, (new).treatment, (new).receipt,
           (new).receipt_time, (new).acceptance, (new).received_kg, (new).refused_kg,
           (new).documented_by
      FROM d WHERE (new).event_id IS NOT NULL
$$;

$f$;
END $do$;
