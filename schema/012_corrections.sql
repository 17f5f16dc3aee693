-- A corrected transformation takes back what it added: its inputs' and outputs' roll-ups and
-- its lineage links (the replacement, stored as an event of its own, adds its own).

CREATE FUNCTION circa_transformed_rollup_sub(p_tenant text, p_id text) RETURNS void
LANGUAGE sql AS $$
    WITH t AS (
        SELECT e.site, e.event_time, e.recorded_time, convert_from(e.canon, 'UTF8')::jsonb AS doc
          FROM event e WHERE e.tenant_id = p_tenant AND e.id = p_id
    ), f AS (
        SELECT t.site, t.event_time, t.recorded_time, i->>'material' AS material, '' AS counterpart,
               'transformed_in' AS type, circa_kg(p_tenant, i->'quantity', i->>'material') AS kg
          FROM t, jsonb_array_elements(t.doc->'inputs') i
        UNION ALL
        SELECT t.site, t.event_time, t.recorded_time, o->>'material', coalesce(o->>'fate', ''),
               'transformed_out', circa_kg(p_tenant, o->'quantity', o->>'material')
          FROM t, jsonb_array_elements(t.doc->'outputs') o
    )
    UPDATE rollup_day r
       SET kg = r.kg - s.kg, events = r.events - s.n, kg_no_value = r.kg_no_value - s.kg,
           late = r.late - s.late
      FROM (SELECT (f.event_time AT TIME ZONE tz.time_zone)::date AS day, coalesce(f.site, '') AS site,
                   f.counterpart, f.material, f.type, sum(f.kg) AS kg, count(*) AS n,
                   count(*) FILTER (WHERE f.recorded_time > f.event_time + interval '1 day') AS late
              FROM f, (SELECT time_zone FROM tenant WHERE id = p_tenant) tz
             GROUP BY 1, 2, 3, 4, 5) s
     WHERE r.tenant_id = p_tenant AND r.day = s.day AND r.site = s.site
       AND r.counterpart = s.counterpart AND r.material = s.material AND r.product = ''
       AND r.type = s.type AND r.operation = '' AND r.ewc = ''
$$;

CREATE OR REPLACE FUNCTION circa_apply_correction(p_tenant text, p_lenient boolean, p_id text,
                                                  p_corrects text, p_replacement text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_type text;
    v_by text;
BEGIN
    SELECT type INTO v_type FROM event WHERE tenant_id = p_tenant AND id = p_corrects;
    IF NOT FOUND THEN
        PERFORM circa_violation(p_tenant, p_lenient, p_id, 'corrects', 'correction',
                                format('there is no event %L to correct', p_corrects));
        RETURN;
    END IF;
    IF v_type = 'corrected' THEN
        PERFORM circa_violation(p_tenant, p_lenient, p_id, 'corrects', 'correction',
                                format('%L is itself a correction; correct its replacement', p_corrects));
        RETURN;
    END IF;
    SELECT replacement INTO v_by FROM correction WHERE tenant_id = p_tenant AND corrected = p_corrects;
    IF FOUND THEN
        PERFORM circa_violation(p_tenant, p_lenient, p_id, 'corrects', 'correction',
            format('%L was already corrected; only its latest version %L can be corrected',
                   p_corrects, v_by));
        RETURN;
    END IF;
    INSERT INTO correction VALUES (p_tenant, p_corrects, p_id, p_replacement);
    IF v_type = 'transformed' THEN
        PERFORM circa_transformed_rollup_sub(p_tenant, p_corrects);
        DELETE FROM lot_link WHERE tenant_id = p_tenant AND event_id = p_corrects;
    ELSE
        PERFORM circa_rollup_add(p_tenant, 0, 0, ARRAY[p_corrects], -1);
    END IF;
END $$;
