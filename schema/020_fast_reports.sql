-- Reports that do not read the whole period's events (docs/PERFORMANCE.md, Reports).
-- schema/009 read every event of the period, with its canonical document parsed, and matched
-- each consignment to its receipt by scanning that set again (quadratic). Here:
--   * kg generated per EWC code comes from the daily roll-ups (rollup_day: type, ewc, site,
--     day; corrections already subtracted);
--   * consignments and receipts (document, carrier, legs, packaging, basis, acceptance live only
--     in the canonical JSON) are read only from shipped, collected and received events, through
--     a partial index, and receipts are matched with equality joins (document, lot);
--   * the treatment lookup (third source of the operation) runs only for consignments with
--     neither a planned operation nor one on the receipt.
-- The answers are those of schema/009; only sums of fractional kg can differ in the last bits
-- (roll-ups add per day; a subtracted correction leaves a rounding residue).

CREATE INDEX IF NOT EXISTS event_flow_time ON event (tenant_id, event_time)
    WHERE type IN ('shipped', 'collected', 'received');

-- Consignments (see schema/009 for the rules; same columns, same answers).
CREATE OR REPLACE FUNCTION circa_report_transfers(p_tenant text, p_from timestamptz,
                                                  p_to timestamptz, p_site text, p_party text)
RETURNS TABLE (id text, event_time timestamptz, type text, origin text, receiver text,
               ewc text, hazardous boolean, material text, lot text, kg double precision,
               operation text, operation_from text, basis text, document text, carrier text,
               transport jsonb, packaging jsonb, acceptance text, refused_kg double precision)
LANGUAGE sql STABLE
-- The planner cannot estimate the CTEs' rows (a few, it guesses) and would match every
-- collection against every shipment, and every shipment against every receipt, in nested
-- loops; hash joins are linear. The treatment lookup stays a (lateral) nested loop. The
-- disabled nested loop inflates the cost past jit_above_cost: JIT compiling took 1.5 s.
SET enable_nestloop = off
SET jit = off
AS $$
    WITH ev AS MATERIALIZED (
        SELECT e.id, e.seq, e.type, e.event_time, e.site, e.from_site, e.to_site, e.material,
               nullif(e.ewc, '') AS ewc, nullif(e.operation, '') AS operation, e.quantity_kg,
               e.lot, convert_from(e.canon, 'UTF8')::jsonb AS doc
          FROM event e
         WHERE e.tenant_id = p_tenant AND e.event_time >= p_from AND e.event_time < p_to
           AND e.type IN ('shipped', 'collected', 'received')
           AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                            AND c.corrected = e.id)
    ), ship AS MATERIALIZED (
        SELECT e.*, e.site AS origin, e.to_site AS receiver, e.doc->>'document' AS document
          FROM ev e
         WHERE e.type = 'shipped' AND circa_report_in_scope(p_tenant, p_site, p_party, e.site)
    ), coll AS (
        SELECT e.*, e.from_site AS origin, e.site AS receiver, e.doc->>'document' AS document
          FROM ev e
         WHERE e.type = 'collected'
           AND circa_report_in_scope(p_tenant, p_site, p_party, e.from_site)
           AND NOT EXISTS (SELECT 1 FROM ship s WHERE s.receiver = e.site
                            AND s.origin = e.from_site AND s.document = e.doc->>'document')
           AND NOT EXISTS (SELECT 1 FROM ship s WHERE s.receiver = e.site
                            AND s.origin = e.from_site AND s.lot = e.lot)
    ), t AS MATERIALIZED (
        SELECT * FROM ship UNION ALL SELECT * FROM coll
    ), rcv AS MATERIALIZED (
        SELECT r.seq, r.site, r.from_site, r.lot, r.operation, r.quantity_kg, r.material,
               r.doc->>'document' AS document, r.doc->>'acceptance' AS acceptance,
               r.doc->'refused_quantity' AS refused_quantity
          FROM ev r WHERE r.type = 'received'
    ), rc AS (
        -- The receiver's first receipt (by seq) with the same sender and document or lot.
        SELECT DISTINCT ON (m.tid) m.* FROM (
            SELECT t.id AS tid, r.* FROM t JOIN rcv r ON r.site = t.receiver
               AND r.from_site = t.origin AND r.document = t.document
             WHERE t.type = 'shipped'
            UNION ALL
            SELECT t.id AS tid, r.* FROM t JOIN rcv r ON r.site = t.receiver
               AND r.from_site = t.origin AND r.lot = t.lot
             WHERE t.type = 'shipped') m
         ORDER BY m.tid, m.seq
    ), tc AS (
        SELECT t.*, coalesce(t.ewc, (SELECT nullif(g.ewc, '') FROM event g
                                      WHERE g.tenant_id = p_tenant AND g.lot = t.lot
                                        AND g.type = 'waste_generated'
                                        AND g.event_time >= p_from AND g.event_time < p_to
                                        AND NOT EXISTS (SELECT 1 FROM correction c
                                                         WHERE c.tenant_id = p_tenant
                                                           AND c.corrected = g.id)
                                      ORDER BY g.seq LIMIT 1)) AS code
          FROM t
    )
    SELECT t.id, t.event_time, t.type, t.origin, t.receiver, t.code,
           coalesce(w.hazardous, false), t.material, t.lot, t.quantity_kg,
           coalesce(t.doc->>'planned_operation', rc.operation, tr.operation),
           CASE WHEN t.doc ? 'planned_operation' THEN 'planned_operation'
                WHEN rc.operation IS NOT NULL THEN 'receipt'
                WHEN tr.operation IS NOT NULL THEN 'treatment' END,
           t.doc->'quantity'->>'basis', t.document, t.doc->>'carrier',
           t.doc->'transport', t.doc->'packaging', rc.acceptance,
           CASE rc.acceptance
                WHEN 'refused' THEN rc.quantity_kg
                WHEN 'partial' THEN circa_kg(p_tenant, rc.refused_quantity, rc.material)
                WHEN 'accepted' THEN 0 END
      FROM tc t
      LEFT JOIN rc ON rc.tid = t.id
      LEFT JOIN LATERAL (
          -- Needed only when neither the consignment nor the receipt names the operation.
          SELECT x.operation FROM event x
           WHERE (t.doc->>'planned_operation') IS NULL AND rc.operation IS NULL
             AND x.tenant_id = p_tenant AND x.lot = t.lot AND x.site = t.receiver
             AND x.type IN ('recycled', 'energy_recovered', 'disposed')
             AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                              AND c.corrected = x.id)
           ORDER BY x.seq LIMIT 1) tr ON true
      LEFT JOIN ewc w ON w.code = t.code
$$;

-- waste_register (see schema/009): kg generated from the roll-ups, consignments grouped once.
CREATE OR REPLACE FUNCTION circa_report_waste_register(p_tenant text, p_from timestamptz,
                                                       p_to timestamptz, p_site text,
                                                       p_party text)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH tz AS (
        SELECT time_zone FROM tenant WHERE id = p_tenant
    ), gen AS (
        SELECT r.ewc, sum(r.kg) AS kg, sum(r.events)::bigint AS n
          FROM rollup_day r, tz
         WHERE r.tenant_id = p_tenant AND r.type = 'waste_generated'
           AND r.day >= (p_from AT TIME ZONE tz.time_zone)::date
           AND r.day < (p_to AT TIME ZONE tz.time_zone)::date
           AND circa_report_in_scope(p_tenant, p_site, p_party, nullif(r.site, ''))
         GROUP BY 1
        HAVING sum(r.events) > 0
    ), tr AS MATERIALIZED (
        SELECT t.*, coalesce(t.ewc, '') AS code
          FROM circa_report_transfers(p_tenant, p_from, p_to, p_site, p_party) t
    ), per AS (
        SELECT tr.code, sum(tr.kg) AS kg, sum(tr.refused_kg) AS refused_kg, count(*) AS n,
               jsonb_agg(jsonb_build_object('event', tr.id, 'type', tr.type,
                           'time', tr.event_time, 'from_site', tr.origin,
                           'receiver', tr.receiver, 'material', tr.material, 'lot', tr.lot,
                           'kg', tr.kg, 'basis', tr.basis, 'operation', tr.operation,
                           'operation_from', tr.operation_from, 'document', tr.document,
                           'carrier', tr.carrier, 'transport', tr.transport,
                           'packaging', tr.packaging, 'acceptance', tr.acceptance,
                           'refused_kg', tr.refused_kg) ORDER BY tr.event_time, tr.id) AS cons
          FROM tr GROUP BY 1
    ), dest AS (
        SELECT d.code, jsonb_agg(jsonb_build_object('receiver', d.receiver,
                           'receiver_name', circa_report_place(p_tenant, d.receiver)->>'name',
                           'operation', d.operation, 'kg', d.kg, 'consignments', d.n)
                                 ORDER BY d.receiver, d.operation) AS j
          FROM (SELECT code, receiver, operation, sum(kg) AS kg, count(*) AS n FROM tr
                 GROUP BY 1, 2, 3) d
         GROUP BY 1
    ), codes AS (
        SELECT ewc AS code FROM gen UNION SELECT code FROM per
    ), entry AS (
        SELECT c.code, jsonb_build_object(
            'ewc', nullif(c.code, ''), 'description', w.description,
            'hazardous', coalesce(w.hazardous, false),
            'generated_kg', coalesce(g.kg, 0), 'generated_events', coalesce(g.n, 0),
            'sent_off_site_kg', coalesce(p.kg, 0),
            'refused_kg', coalesce(p.refused_kg, 0),
            'destinations', coalesce(d.j, '[]'),
            'consignments', coalesce(p.cons, '[]')) AS j,
            coalesce(w.hazardous, false) AS hazardous, coalesce(g.kg, 0) AS generated_kg
          FROM codes c
          LEFT JOIN gen g ON g.ewc = c.code
          LEFT JOIN per p ON p.code = c.code
          LEFT JOIN dest d ON d.code = c.code
          LEFT JOIN ewc w ON w.code = c.code
    )
    SELECT jsonb_build_object(
        'entries', coalesce((SELECT jsonb_agg(j ORDER BY code) FROM entry), '[]'),
        'totals', jsonb_build_object(
            'generated_kg', coalesce((SELECT sum(kg) FROM gen), 0),
            'hazardous_generated_kg', coalesce((SELECT sum(generated_kg) FROM entry
                                                 WHERE hazardous), 0),
            'sent_off_site_kg', coalesce((SELECT sum(kg) FROM tr), 0),
            'consignments', (SELECT count(*) FROM tr)))
$$;
