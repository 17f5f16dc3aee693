-- The roll-up step groups its events before it joins anything (docs/PERFORMANCE.md, Metrics,
-- "141"). 140's circa_rollup_add joined every event of the group to tenant (for the time zone)
-- and to ewc (for the hazardous flag), then sorted the joined rows by all ten key columns: on
-- the ingest benchmark's 2,400-event groups 8 ms, of which reading the events is 0.7 ms. Now
-- the time zone is read once, the events are grouped on their own columns (hazardous depends
-- on the EWC code only, so it is looked up for the few grouped rows), and the grouping hashes:
-- the planner's estimate for a new seq range is a handful of rows (the range lies beyond the
-- statistics), for which it would sort, while a group holds hundreds to thousands. Same rows,
-- same sums: 2.5 ms for the same group.
-- Plain PostgreSQL only: on Citus, 105/130's router version stays.

DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_rollup_add(p_tenant text, p_first bigint, p_last bigint,
                                            p_only_ids text[], p_sign double precision) RETURNS void
LANGUAGE plpgsql
SET enable_sort = off
AS $$
DECLARE
    v_lo bigint := p_first;
    v_hi bigint := p_last;
    v_tz text;
    v_rows rollup_day[];
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
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    v_rows := ARRAY(
        SELECT (p_tenant, g.day, g.site, g.counterpart, g.material, g.product, g.type,
                g.operation, g.ewc, coalesce(w.hazardous, false), g.kg, g.events,
                g.value_declared, g.kg_no_value, g.late)::rollup_day
          FROM (SELECT (e.event_time AT TIME ZONE v_tz)::date AS day,
                       coalesce(e.site, '') AS site,
                       coalesce(CASE WHEN e.type = 'shipped' THEN e.to_site
                                     WHEN e.type IN ('received', 'collected') THEN e.from_site
                                END, '') AS counterpart,
                       coalesce(e.material, '') AS material, coalesce(e.product, '') AS product,
                       e.type, coalesce(e.operation, '') AS operation,
                       coalesce(e.ewc, '') AS ewc,
                       p_sign * sum(coalesce(e.quantity_kg, 0)) AS kg,
                       (p_sign * count(*))::bigint AS events,
                       p_sign * sum(coalesce(e.value_amount, 0)) AS value_declared,
                       p_sign * sum(CASE WHEN e.value_amount IS NULL
                                         THEN coalesce(e.quantity_kg, 0) ELSE 0 END) AS kg_no_value,
                       (p_sign * count(*) FILTER (WHERE e.recorded_time > e.event_time
                                                                      + interval '1 day'))::bigint
                           AS late
                  FROM (SELECT id, type, event_time, recorded_time, site, to_site, from_site,
                               material, product, operation, ewc, quantity_kg, value_amount
                          FROM event
                         WHERE tenant_id = p_tenant AND seq >= v_lo AND seq <= v_hi
                         ORDER BY seq LIMIT v_hi - v_lo + 1) e
                 WHERE (p_only_ids IS NULL OR e.id = ANY (p_only_ids))
                   AND e.type NOT IN ('corrected', 'measured', 'observed', 'transformed')
                 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8) g
          LEFT JOIN ewc w ON w.code = g.ewc);
    IF cardinality(v_rows) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO rollup_day AS r SELECT * FROM unnest(v_rows)
    ON CONFLICT (tenant_id, day, site, counterpart, material, product, type, operation, ewc)
    DO UPDATE SET kg = r.kg + EXCLUDED.kg, events = r.events + EXCLUDED.events,
                  value_declared = r.value_declared + EXCLUDED.value_declared,
                  kg_no_value = r.kg_no_value + EXCLUDED.kg_no_value,
                  late = r.late + EXCLUDED.late;
    PERFORM circa_rollup_month_apply('{}', v_rows);
END $$;
$f$;
END $do$;
