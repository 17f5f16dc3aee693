-- circa_rollup_add reads its group through event_seq whatever the planner knows of the tenant
-- (docs/PERFORMANCE.md, Metrics, 113). For a tenant without statistics yet (new, or too small
-- to be among the most common values of a large shared table) `tenant_id = … AND seq BETWEEN …`
-- is estimated at one row on event_seq and on event_time alike, and the custom plan took
-- event_time with only tenant_id as index condition: every group read the tenant's whole
-- ledger (32 ms per 1,000-event group at 20,000 events, 46 ms at 100,000; measured). Read in
-- seq order with a LIMIT of the range's size (seqs are unique per tenant, so it bounds nothing
-- away), only event_seq gives the order without a sort: 0.9 ms. 103's body otherwise.
-- On Citus, 100_citus_compat2 keeps its own version.
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
    IF v_hi < v_lo THEN
        RETURN;
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
      FROM (SELECT * FROM event
             WHERE tenant_id = p_tenant AND seq >= v_lo AND seq <= v_hi
             ORDER BY seq LIMIT v_hi - v_lo + 1) e
      JOIN tenant t ON t.id = e.tenant_id
      LEFT JOIN ewc w ON w.code = e.ewc
     WHERE (p_only_ids IS NULL OR e.id = ANY (p_only_ids))
       AND e.type NOT IN ('corrected', 'measured', 'observed', 'transformed')
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
    ON CONFLICT (tenant_id, day, site, counterpart, material, product, type, operation, ewc)
    DO UPDATE SET kg = r.kg + EXCLUDED.kg, events = r.events + EXCLUDED.events,
                  value_declared = r.value_declared + EXCLUDED.value_declared,
                  kg_no_value = r.kg_no_value + EXCLUDED.kg_no_value,
                  late = r.late + EXCLUDED.late;
END $$;
$f$;
END $do$;
