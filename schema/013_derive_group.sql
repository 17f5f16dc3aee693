-- The per-group derive step, made cheap for small groups. SQL-language functions are planned
-- again on every call; plpgsql caches its plans per connection. circad also knows which kinds
-- of events a group holds, so steps with nothing to do are skipped.

CREATE OR REPLACE FUNCTION circa_rollup_add(p_tenant text, p_first bigint, p_last bigint,
                                            p_only_ids text[], p_sign double precision) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_day AS r
    SELECT e.tenant_id, (e.event_time AT TIME ZONE t.time_zone)::date, coalesce(e.site, ''),
           coalesce(CASE e.type WHEN 'shipped' THEN e.to_site
                                WHEN 'received' THEN e.from_site
                                WHEN 'collected' THEN e.from_site END, ''),
           coalesce(e.material, ''), coalesce(e.product, ''), e.type,
           coalesce(e.operation, ''), coalesce(e.ewc, ''), coalesce(w.hazardous, false),
           p_sign * sum(coalesce(e.quantity_kg, 0)), (p_sign * count(*))::bigint,
           p_sign * sum(coalesce(e.value_amount, 0)),
           p_sign * sum(CASE WHEN e.value_amount IS NULL THEN coalesce(e.quantity_kg, 0) ELSE 0 END),
           (p_sign * count(*) FILTER (WHERE e.recorded_time > e.event_time + interval '1 day'))::bigint
      FROM event e
      JOIN tenant t ON t.id = e.tenant_id
      LEFT JOIN ewc w ON w.code = e.ewc
     WHERE e.tenant_id = p_tenant
       AND (p_only_ids IS NULL AND e.seq BETWEEN p_first AND p_last
            OR e.id = ANY (p_only_ids))
       AND e.type NOT IN ('corrected', 'measured', 'observed', 'transformed')
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
    ON CONFLICT (tenant_id, day, site, counterpart, material, product, type, operation, ewc)
    DO UPDATE SET kg = r.kg + EXCLUDED.kg, events = r.events + EXCLUDED.events,
                  value_declared = r.value_declared + EXCLUDED.value_declared,
                  kg_no_value = r.kg_no_value + EXCLUDED.kg_no_value,
                  late = r.late + EXCLUDED.late;
END $$;

-- What circad knows about a group: which derive steps have work to do.
--   1 transformed events   2 events with a lot   4 events with an item   8 corrected events
CREATE FUNCTION circa_derive_group(p_tenant text, p_first bigint, p_last bigint, p_kinds integer)
RETURNS void LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    e record;
    v_lenient boolean := false;
BEGIN
    IF p_kinds & 12 <> 0 THEN
        SELECT mode = 'lenient' INTO v_lenient FROM tenant WHERE id = p_tenant;
    END IF;
    PERFORM circa_rollup_add(p_tenant, p_first, p_last, NULL, 1);
    IF p_kinds & 1 <> 0 THEN
        PERFORM circa_derive_transformations(p_tenant, p_first, p_last);
    END IF;
    IF p_kinds & 2 <> 0 THEN
        INSERT INTO lot (tenant_id, id, material, site, first_seen)
        SELECT DISTINCT ON (lot) p_tenant, lot, material, site, event_time
          FROM event WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
           AND lot IS NOT NULL
         ORDER BY lot, seq
        ON CONFLICT DO NOTHING;
    END IF;
    IF p_kinds & 8 <> 0 THEN
        FOR e IN SELECT id, corrects, convert_from(canon, 'UTF8')::jsonb->'replacement'->>'id' AS repl
                   FROM event WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
                    AND type = 'corrected' ORDER BY seq LOOP
            PERFORM circa_apply_correction(p_tenant, v_lenient, e.id, e.corrects, e.repl);
        END LOOP;
    END IF;
    IF p_kinds & 4 <> 0 THEN
        FOR e IN SELECT id, type, item, product, event_time
                   FROM event WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
                    AND item IS NOT NULL AND type <> 'corrected' ORDER BY seq LOOP
            PERFORM circa_apply_item(p_tenant, v_lenient, e.id, e.type, e.item, e.product,
                                     e.event_time);
        END LOOP;
    END IF;
END $$;
