-- Derived state kept in the ingest transaction: daily roll-ups, item lives, lot lineage and
-- corrections. ingest calls circa_derive(tenant, first_seq, last_seq) after inserting a group's
-- events, so a metric never sees events without their roll-ups. Everything here can be rebuilt
-- from the event table (circa_derive over every seq of a tenant).

ALTER TABLE event ADD COLUMN value_amount double precision;  -- declared value, when given
ALTER TABLE event ADD COLUMN currency char(3);

-- Item lives -------------------------------------------------------------------------------
-- state: new (seen, never in use), in_use (a life is open), out_of_use (returned/collected,
-- waiting for a new life or a final fate), retired (recycled, energy-recovered or disposed).
ALTER TABLE item ADD COLUMN state text NOT NULL DEFAULT 'new'
    CHECK (state IN ('new', 'in_use', 'out_of_use', 'retired'));
ALTER TABLE item ADD COLUMN lives integer NOT NULL DEFAULT 0;
ALTER TABLE item ADD COLUMN fate text;            -- final fate once retired

CREATE TABLE lifecycle (
    tenant_id   text NOT NULL,
    item        text NOT NULL,
    life        integer NOT NULL,                 -- 1, 2, … in the order the lives started
    product     text,
    started     timestamptz NOT NULL,
    start_type  text NOT NULL,                    -- put_on_market, reused, refurbished, remanufactured
    start_event text NOT NULL,
    ended       timestamptz,
    end_type    text,                             -- returned, collected, recycled, energy_recovered, disposed
    end_event   text,
    PRIMARY KEY (tenant_id, item, life)
);
CREATE INDEX lifecycle_product ON lifecycle (tenant_id, product);

-- Lot lineage ------------------------------------------------------------------------------
-- One row per input lot × output lot of a transformed event. share is the fraction of the
-- output's mass that came from this input (input kg / all inputs' kg), so mass shares multiply
-- along a path through any number of transformations.
CREATE TABLE lot_link (
    tenant_id  text NOT NULL,
    event_id   text NOT NULL,
    input_lot  text NOT NULL,
    output_lot text NOT NULL,
    input_kg   double precision NOT NULL,
    output_kg  double precision NOT NULL,
    share      double precision NOT NULL,
    fate       text,                              -- the output's fate
    event_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id, input_lot, output_lot)
);
CREATE INDEX lot_link_output ON lot_link (tenant_id, output_lot);
CREATE INDEX lot_link_input ON lot_link (tenant_id, input_lot);
CREATE INDEX event_lot ON event (tenant_id, lot) WHERE lot IS NOT NULL;
CREATE INDEX event_item ON event (tenant_id, item) WHERE item IS NOT NULL;

-- Corrections ------------------------------------------------------------------------------
-- An event is corrected at most once; its replacement (stored as an event of its own) can be
-- corrected in turn, so only the latest version is ever corrected.
CREATE TABLE correction (
    tenant_id text NOT NULL,
    corrected text NOT NULL,                      -- id of the event declared wrong
    by_event  text NOT NULL,                      -- id of the corrected event
    replacement text NOT NULL,                    -- id of the replacement event
    PRIMARY KEY (tenant_id, corrected)
);

-- Daily roll-ups ---------------------------------------------------------------------------
-- Per tenant-local day × site × counterpart × material × product × type × operation × EWC.
-- Absent keys are '' (primary-key columns cannot be NULL). counterpart is to_site for
-- shipped, from_site for received and collected. A corrected event's contribution is
-- subtracted when its correction arrives, so the roll-ups always show the corrected view.
CREATE TABLE rollup_day (
    tenant_id      text NOT NULL,
    day            date NOT NULL,
    site           text NOT NULL,
    counterpart    text NOT NULL,
    material       text NOT NULL,
    product        text NOT NULL,
    type           text NOT NULL,
    operation      text NOT NULL,
    ewc            text NOT NULL,
    hazardous      boolean NOT NULL,
    kg             double precision NOT NULL,
    events         bigint NOT NULL,
    value_declared double precision NOT NULL,     -- Σ declared value amounts
    kg_no_value    double precision NOT NULL,     -- kg of events without a declared value
    late           bigint NOT NULL,               -- recorded more than a day after event time
    PRIMARY KEY (tenant_id, day, site, counterpart, material, product, type, operation, ewc)
);

-- The roll-up key and measures of a set of events, signed (+1 add, -1 subtract).
CREATE FUNCTION circa_rollup_add(p_tenant text, p_first bigint, p_last bigint,
                                 p_only_ids text[], p_sign double precision) RETURNS void
LANGUAGE sql AS $$
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
                  late = r.late + EXCLUDED.late
$$;

-- Mass in kg of a quantity object {value, unit}; volumes through the material's density.
CREATE FUNCTION circa_kg(p_tenant text, p_q jsonb, p_material text) RETURNS double precision
LANGUAGE sql STABLE AS $$
    SELECT (p_q->>'value')::double precision * u.factor
           * CASE WHEN u.kind = 'volume' THEN m.density_kg_m3 ELSE 1 END
      FROM unit u
      LEFT JOIN material m ON m.tenant_id = p_tenant AND m.code = p_material
     WHERE u.code = p_q->>'unit'
$$;

-- Lineage and roll-ups of the transformed events in a seq range.
CREATE FUNCTION circa_derive_transformations(p_tenant text, p_first bigint, p_last bigint)
RETURNS void LANGUAGE sql AS $$
    WITH t AS (
        SELECT e.id, e.site, e.event_time, e.recorded_time,
               convert_from(e.canon, 'UTF8')::jsonb AS doc
          FROM event e
         WHERE e.tenant_id = p_tenant AND e.seq BETWEEN p_first AND p_last
           AND e.type = 'transformed'
    ), ins AS (
        SELECT t.id, t.site, t.event_time, t.recorded_time, i->>'lot' AS lot,
               i->>'material' AS material, circa_kg(p_tenant, i->'quantity', i->>'material') AS kg
          FROM t, jsonb_array_elements(t.doc->'inputs') i
    ), outs AS (
        SELECT t.id, t.site, t.event_time, t.recorded_time, o->>'lot' AS lot,
               o->>'material' AS material, coalesce(o->>'fate', '') AS fate,
               circa_kg(p_tenant, o->'quantity', o->>'material') AS kg
          FROM t, jsonb_array_elements(t.doc->'outputs') o
    ), links AS (
        INSERT INTO lot_link (tenant_id, event_id, input_lot, output_lot, input_kg, output_kg,
                              share, fate, event_time)
        SELECT p_tenant, i.id, i.lot, o.lot, i.kg, o.kg,
               i.kg / nullif(sum(i.kg) OVER (PARTITION BY i.id, o.lot), 0),
               nullif(o.fate, ''), i.event_time
          FROM ins i JOIN outs o ON o.id = i.id
        ON CONFLICT DO NOTHING
    ), lots AS (
        INSERT INTO lot (tenant_id, id, material, site, first_seen)
        SELECT DISTINCT ON (lot) p_tenant, lot, material, site, event_time
          FROM (SELECT lot, material, site, event_time FROM ins
                UNION ALL SELECT lot, material, site, event_time FROM outs) x
        ON CONFLICT DO NOTHING
    )
    -- Inputs roll up as type transformed_in, outputs as transformed_out with the fate as
    -- counterpart, so recyclers' yields read from roll-ups like every other flow.
    INSERT INTO rollup_day AS r
    SELECT p_tenant, (f.event_time AT TIME ZONE tz.time_zone)::date, coalesce(f.site, ''),
           f.counterpart, f.material, '', f.type, '', '', false, sum(f.kg), count(*), 0,
           sum(f.kg), count(*) FILTER (WHERE f.recorded_time > f.event_time + interval '1 day')
      FROM (SELECT site, event_time, recorded_time, material, kg, '' AS counterpart,
                   'transformed_in' AS type FROM ins
            UNION ALL
            SELECT site, event_time, recorded_time, material, kg, fate, 'transformed_out'
              FROM outs) f,
           (SELECT time_zone FROM tenant WHERE id = p_tenant) tz
     GROUP BY 1, 2, 3, 4, 5, 7
    ON CONFLICT (tenant_id, day, site, counterpart, material, product, type, operation, ewc)
    DO UPDATE SET kg = r.kg + EXCLUDED.kg, events = r.events + EXCLUDED.events,
                  kg_no_value = r.kg_no_value + EXCLUDED.kg_no_value, late = r.late + EXCLUDED.late
$$;

-- A rule broken by an event: strict tenants refuse the whole request (the message carries
-- "<event id>\t<field>\t<text>" so circad can name the event), lenient tenants store the event
-- with a flag.
CREATE FUNCTION circa_violation(p_tenant text, p_lenient boolean, p_event text, p_field text,
                                p_flag text, p_msg text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_lenient THEN
        UPDATE event SET flags = array_append(flags, p_flag)
         WHERE tenant_id = p_tenant AND id = p_event;
    ELSE
        RAISE EXCEPTION USING ERRCODE = 'CA200',
            MESSAGE = p_event || E'\t' || p_field || E'\t' || p_msg;
    END IF;
END $$;

-- A correction: the corrected event must exist and be the latest version; its roll-up
-- contribution is taken back (the replacement, stored as its own event, adds its own).
CREATE FUNCTION circa_apply_correction(p_tenant text, p_lenient boolean, p_id text,
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
    PERFORM circa_rollup_add(p_tenant, 0, 0, ARRAY[p_corrects], -1);
END $$;

-- One event about a serialised item, applied to the item's state (in seq order).
--   new | out_of_use --start--> in_use (a new life)     start: put_on_market, reused,
--   in_use --end--> out_of_use (the life ends)                 refurbished, remanufactured
--   any but retired --retire--> retired (a life open is ended with that fate)
--   end: returned, collected;  retire: recycled, energy_recovered, disposed
CREATE FUNCTION circa_apply_item(p_tenant text, p_lenient boolean, p_id text, p_type text,
                                 p_item text, p_product text, p_time timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    it item%ROWTYPE;
    v_start_type text;
    v_err text;
BEGIN
    INSERT INTO item (tenant_id, id, product, first_seen)
    VALUES (p_tenant, p_item, p_product, p_time) ON CONFLICT DO NOTHING;
    SELECT * INTO it FROM item WHERE tenant_id = p_tenant AND id = p_item FOR UPDATE;
    IF it.product IS NULL AND p_product IS NOT NULL THEN
        UPDATE item SET product = p_product WHERE tenant_id = p_tenant AND id = p_item;
        it.product := p_product;
    END IF;
    IF it.state = 'in_use' THEN
        SELECT start_type INTO v_start_type FROM lifecycle
         WHERE tenant_id = p_tenant AND item = p_item AND life = it.lives;
    END IF;

    IF p_type IN ('put_on_market', 'reused', 'refurbished', 'remanufactured') THEN
        IF it.state = 'retired' THEN
            v_err := format('item %L was retired (%s) and cannot start a new life', p_item, it.fate);
        ELSIF it.state = 'in_use' AND p_type = 'put_on_market' AND v_start_type <> 'put_on_market' THEN
            RETURN;  -- a refurbished or reused item now sold: the same life
        ELSIF it.state = 'in_use' THEN
            v_err := format('item %L is already in use (life %s); end that life first', p_item, it.lives);
        ELSE
            UPDATE item SET state = 'in_use', lives = lives + 1
             WHERE tenant_id = p_tenant AND id = p_item;
            INSERT INTO lifecycle (tenant_id, item, life, product, started, start_type, start_event)
            VALUES (p_tenant, p_item, it.lives + 1, it.product, p_time, p_type, p_id);
            RETURN;
        END IF;
    ELSIF p_type IN ('returned', 'collected', 'recycled', 'energy_recovered', 'disposed') THEN
        IF it.state = 'retired' THEN
            v_err := format('item %L was already retired (%s)', p_item, it.fate);
        ELSIF it.state <> 'in_use' AND p_type = 'returned' THEN
            v_err := format('item %L has no life to end (it is %s): a second return?', p_item,
                            replace(it.state, '_', ' '));
        ELSE
            IF it.state = 'in_use' THEN
                UPDATE lifecycle SET ended = p_time, end_type = p_type, end_event = p_id
                 WHERE tenant_id = p_tenant AND item = p_item AND life = it.lives;
            END IF;
            IF p_type IN ('recycled', 'energy_recovered', 'disposed') THEN
                UPDATE item SET state = 'retired', fate = p_type
                 WHERE tenant_id = p_tenant AND id = p_item;
            ELSIF it.state = 'in_use' THEN
                UPDATE item SET state = 'out_of_use' WHERE tenant_id = p_tenant AND id = p_item;
            END IF;
            RETURN;
        END IF;
    ELSIF p_type = 'repaired' AND it.state = 'retired' THEN
        v_err := format('item %L was retired (%s) and cannot be repaired', p_item, it.fate);
    ELSE
        RETURN;
    END IF;
    PERFORM circa_violation(p_tenant, p_lenient, p_id, 'item', 'lifecycle', v_err);
END $$;

-- Everything derived from the events of one committed group (seq p_first..p_last).
CREATE FUNCTION circa_derive(p_tenant text, p_first bigint, p_last bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    e record;
    v_lenient boolean;
BEGIN
    SELECT mode = 'lenient' INTO v_lenient FROM tenant WHERE id = p_tenant;
    PERFORM circa_rollup_add(p_tenant, p_first, p_last, NULL, 1);
    PERFORM circa_derive_transformations(p_tenant, p_first, p_last);
    INSERT INTO lot (tenant_id, id, material, site, first_seen)
    SELECT DISTINCT ON (lot) p_tenant, lot, material, site, event_time
      FROM event WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last AND lot IS NOT NULL
     ORDER BY lot, seq
    ON CONFLICT DO NOTHING;
    FOR e IN SELECT id, corrects, convert_from(canon, 'UTF8')::jsonb->'replacement'->>'id' AS repl
               FROM event WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
                AND type = 'corrected' ORDER BY seq LOOP
        PERFORM circa_apply_correction(p_tenant, v_lenient, e.id, e.corrects, e.repl);
    END LOOP;
    FOR e IN SELECT id, type, item, product, event_time
               FROM event WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
                AND item IS NOT NULL AND type <> 'corrected' ORDER BY seq LOOP
        PERFORM circa_apply_item(p_tenant, v_lenient, e.id, e.type, e.item, e.product, e.event_time);
    END LOOP;
END $$;
