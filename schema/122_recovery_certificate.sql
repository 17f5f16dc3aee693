-- recovery_certificate in time linear in its receipts (docs/PERFORMANCE.md "Reports"). 009's
-- statement, the same answers, read differently:
--   * each receipt's operations were one scan of all the period's operations (a correlated
--     subquery over the ops CTE per receipt): receipts × operations, a day of the 10 M demo
--     (2,069 receipts, 3,764 operations) 6 s, a week 40 s, a month over 5 min. They are now
--     aggregated once per receipt (GROUP BY root) and joined to the receipts by hash;
--   * the planner guessed the walk at tens of thousands of lots whatever the period and joined
--     it to event by hashing every event of the tenant that names an operation (2.4 M rows,
--     a seq scan of the whole ledger, 5 s, even for one day). The later events of a walked lot
--     are read through event_lot, one lookup per lot (a LATERAL subquery, so no other path);
--   * JIT compiled the statement for 1.3 s; it is off for this function.
-- The receipts are read as circa_report_events reads them (corrections excluded, canon parsed),
-- written out so the plan can use the period's event_time range directly.
-- On Citus, 104's version stays (it reads event directly and works on the shard as it is).
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_report_recovery(p_tenant text, p_from timestamptz,
                                                 p_to timestamptz, p_generator text,
                                                 p_recycler text) RETURNS jsonb
LANGUAGE plpgsql STABLE SET jit = off AS $$
DECLARE
    v_out jsonb;
BEGIN
    -- EXECUTE: planned for this period's values each time (a cached generic plan guesses the
    -- same receipts for a day as for a year).
    EXECUTE $q$
        WITH RECURSIVE rcpt AS MATERIALIZED (
            SELECT e.id, e.type, e.event_time, e.site, e.from_site, e.material,
                   nullif(e.ewc, '') AS ewc, e.quantity_kg, e.lot,
                   convert_from(e.canon, 'UTF8')::jsonb AS doc
              FROM event e
             WHERE e.tenant_id = $1 AND e.event_time >= $2 AND e.event_time < $3
               AND e.type IN ('received', 'collected')
               AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = $1
                                AND c.corrected = e.id)
               AND (e.from_site = $4
                    OR EXISTS (SELECT 1 FROM site s WHERE s.tenant_id = $1
                                AND s.code = e.from_site AND s.party = $4))
               AND EXISTS (SELECT 1 FROM site s WHERE s.tenant_id = $1 AND s.code = e.site
                            AND s.party <> $4
                            AND ($5 IS NULL OR s.party = $5))
        ), walk(root, rtime, lot, share, depth, path) AS (
            SELECT r.id, r.event_time, r.lot, 1::float8, 0, ARRAY[r.lot]
              FROM rcpt r WHERE r.lot IS NOT NULL
            UNION ALL
            SELECT w.root, w.rtime, l.output_lot, w.share * l.share, w.depth + 1,
                   w.path || l.output_lot
              FROM walk w JOIN lot_link l ON l.tenant_id = $1 AND l.input_lot = w.lot
             WHERE w.depth < 16 AND NOT l.output_lot = ANY (w.path)
               AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = $1
                                AND c.corrected = l.event_id)
        ), ops AS MATERIALIZED (
            SELECT w.root, x.id, x.type, x.site, x.event_time, x.operation, x.lot, w.path,
                   x.quantity_kg * w.share AS kg, o.category,
                   o.category IN ('interim', 'pretreatment') AS interim
              FROM walk w
              CROSS JOIN LATERAL (
                  SELECT y.id, y.type, y.site, y.event_time, y.operation, y.lot, y.quantity_kg
                    FROM event y
                   WHERE y.tenant_id = $1 AND y.lot = w.lot AND y.event_time >= w.rtime
                     AND y.id <> w.root AND y.operation IS NOT NULL
                     AND y.type NOT IN ('corrected', 'measured', 'observed')
                  OFFSET 0) x
              JOIN rd_operation o ON o.code = x.operation
             WHERE NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = $1
                                AND c.corrected = x.id)
        ), opj AS (
            SELECT o.root, jsonb_agg(jsonb_build_object(
                       'event', o.id, 'type', o.type, 'site', o.site, 'time', o.event_time,
                       'operation', o.operation, 'category', o.category, 'lot', o.lot,
                       'via', to_jsonb(o.path), 'kg', o.kg, 'interim', o.interim)
                       ORDER BY o.event_time, o.id) AS j
              FROM ops o GROUP BY o.root
        ), per AS (
            SELECT r.id, r.event_time, jsonb_build_object(
                       'event', r.id, 'type', r.type, 'time', r.event_time,
                       'from_site', r.from_site,
                       'site', r.site, 'material', r.material, 'ewc', r.ewc, 'lot', r.lot,
                       'kg', r.quantity_kg, 'basis', r.doc->'quantity'->>'basis',
                       'document', r.doc->>'document', 'acceptance', r.doc->>'acceptance',
                       'operations', coalesce(opj.j, '[]')) AS j
              FROM rcpt r LEFT JOIN opj ON opj.root = r.id
        ), fin AS (
            SELECT operation, sum(kg) AS kg FROM ops WHERE NOT interim GROUP BY 1
        ), itm AS (
            SELECT operation, sum(kg) AS kg FROM ops WHERE interim GROUP BY 1
        )
        SELECT jsonb_build_object(
            'generator', circa_report_place($1, $4),
            'recycler', CASE WHEN $5 IS NOT NULL THEN circa_report_place($1, $5) END,
            'receipts', coalesce((SELECT jsonb_agg(j ORDER BY event_time, id) FROM per), '[]'),
            'totals', jsonb_build_object(
                'received_kg', coalesce((SELECT sum(quantity_kg) FROM rcpt), 0),
                'untracked_kg', coalesce((SELECT sum(quantity_kg) FROM rcpt WHERE lot IS NULL), 0),
                'recovered_kg', coalesce((SELECT sum(kg) FROM fin WHERE operation LIKE 'R%'), 0),
                'disposed_kg', coalesce((SELECT sum(kg) FROM fin WHERE operation LIKE 'D%'), 0),
                'by_operation', coalesce((SELECT jsonb_object_agg(operation, kg) FROM fin), '{}'),
                'interim_by_operation',
                    coalesce((SELECT jsonb_object_agg(operation, kg) FROM itm), '{}')))
    $q$ INTO v_out USING p_tenant, p_from, p_to, p_generator, p_recycler;
    RETURN v_out;
END $$;
$f$;
END $do$;
