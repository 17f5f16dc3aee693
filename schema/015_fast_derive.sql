-- Figures that /v1/metrics used to compute from events at read time, now kept in the ingest
-- transaction (circa_derive_group), so a metric reads a few rows per day of the period instead
-- of every event of the tenant:
--   interim_event  one row per (uncorrected) event with an interim operation (R12, R13,
--                  D13–D15) and next_time: the time of the first later flow event or
--                  transformation of its lot. The event is still interim at `to` exactly when
--                  next_time IS NULL OR next_time >= to, so circa_interim is a range read.
--   loss_day       declared process losses of transformations per tenant-local day × site.
-- Both are rebuilt from events here (existing tenants) and by circa_rollup_rebuild.

CREATE TABLE interim_event (
    tenant_id  text NOT NULL,
    id         text NOT NULL,
    seq        bigint NOT NULL,
    lot        text,
    event_time timestamptz NOT NULL,
    site       text,
    material   text,
    product    text,
    kg         double precision,
    next_time  timestamptz,            -- first later flow/transformation of the lot; NULL: none
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX interim_event_time ON interim_event (tenant_id, event_time);
CREATE INDEX interim_event_lot ON interim_event (tenant_id, lot) WHERE lot IS NOT NULL;

CREATE TABLE loss_day (
    tenant_id text NOT NULL,
    day       date NOT NULL,
    site      text NOT NULL,             -- '' when the event names none
    kg        double precision NOT NULL,
    PRIMARY KEY (tenant_id, day, site)
);

-- The time the interim event (id, seq, lot, time) stops being interim: the first later
-- uncorrected flow event on its lot (same time: later seq) or transformation taking the lot in.
CREATE FUNCTION circa_interim_next(p_tenant text, p_id text, p_seq bigint, p_lot text,
                                   p_time timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT least(
        (SELECT min(n.event_time) FROM event n
          WHERE n.tenant_id = p_tenant AND n.lot = p_lot AND n.id <> p_id
            AND n.type NOT IN ('corrected', 'measured', 'observed')
            AND (n.event_time > p_time OR n.event_time = p_time AND n.seq > p_seq)
            AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                             AND c.corrected = n.id)),
        (SELECT min(l.event_time) FROM lot_link l
          WHERE l.tenant_id = p_tenant AND l.input_lot = p_lot AND l.event_time >= p_time
            AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                             AND c.corrected = l.event_id)))
$$;

-- interim_event after a group (seq p_first..p_last) whose lineage and corrections are applied.
CREATE FUNCTION circa_interim_derive(p_tenant text, p_first bigint, p_last bigint,
                                     p_kinds integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_lots text[];
BEGIN
    IF p_kinds & 8 <> 0 THEN
        DELETE FROM interim_event i USING correction c
         WHERE i.tenant_id = p_tenant AND c.tenant_id = p_tenant AND c.corrected = i.id
           AND c.by_event IN (SELECT id FROM event WHERE tenant_id = p_tenant
                                 AND seq BETWEEN p_first AND p_last AND type = 'corrected');
    END IF;
    INSERT INTO interim_event (tenant_id, id, seq, lot, event_time, site, material, product, kg)
    SELECT p_tenant, e.id, e.seq, e.lot, e.event_time, e.site, e.material, e.product, e.quantity_kg
      FROM event e
     WHERE e.tenant_id = p_tenant AND e.seq BETWEEN p_first AND p_last
       AND e.operation IN ('R12', 'R13', 'D13', 'D14', 'D15')
       AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                        AND c.corrected = e.id)
    ON CONFLICT DO NOTHING;
    IF p_kinds & 11 = 0 THEN
        RETURN;   -- no lot, transformation or correction: no interim event can move on
    END IF;
    -- Lots whose interim events may have moved on (or back, after a correction).
    SELECT array_agg(DISTINCT x.lot) INTO v_lots FROM (
        SELECT e.lot FROM event e
         WHERE e.tenant_id = p_tenant AND e.seq BETWEEN p_first AND p_last AND e.lot IS NOT NULL
        UNION ALL
        SELECT l.input_lot FROM event e
          JOIN lot_link l ON l.tenant_id = p_tenant AND l.event_id = e.id
         WHERE p_kinds & 1 <> 0 AND e.tenant_id = p_tenant AND e.seq BETWEEN p_first AND p_last
           AND e.type = 'transformed'
        UNION ALL
        SELECT coalesce(k.lot, i->>'lot') FROM event e
          JOIN event k ON k.tenant_id = p_tenant AND k.id = e.corrects
          LEFT JOIN LATERAL jsonb_array_elements(
              CASE WHEN k.type = 'transformed'
                   THEN convert_from(k.canon, 'UTF8')::jsonb->'inputs' ELSE '[]' END) i ON true
         WHERE p_kinds & 8 <> 0 AND e.tenant_id = p_tenant AND e.seq BETWEEN p_first AND p_last
           AND e.type = 'corrected') x
     WHERE x.lot IS NOT NULL;
    IF v_lots IS NULL THEN
        RETURN;
    END IF;
    UPDATE interim_event i
       SET next_time = circa_interim_next(p_tenant, i.id, i.seq, i.lot, i.event_time)
     WHERE i.tenant_id = p_tenant AND i.lot = ANY (v_lots)
       AND next_time IS DISTINCT FROM circa_interim_next(p_tenant, i.id, i.seq, i.lot, i.event_time);
END $$;

-- Declared losses (kg) of the transformed events in a seq range or of the given ids, signed.
CREATE FUNCTION circa_loss_add(p_tenant text, p_first bigint, p_last bigint,
                               p_only_ids text[], p_sign double precision) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO loss_day AS d
    SELECT p_tenant, (e.event_time AT TIME ZONE t.time_zone)::date, coalesce(e.site, ''),
           p_sign * coalesce(sum(circa_kg(p_tenant, convert_from(e.canon, 'UTF8')::jsonb->'loss',
                                          NULL)), 0)
      FROM event e
      JOIN tenant t ON t.id = e.tenant_id
     WHERE e.tenant_id = p_tenant AND e.type = 'transformed'
       AND (p_only_ids IS NULL AND e.seq BETWEEN p_first AND p_last OR e.id = ANY (p_only_ids))
     GROUP BY 1, 2, 3
    ON CONFLICT (tenant_id, day, site) DO UPDATE SET kg = d.kg + EXCLUDED.kg;
END $$;

-- A corrected transformation also takes back its declared loss.
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
        PERFORM circa_loss_add(p_tenant, 0, 0, ARRAY[p_corrects], -1);
        DELETE FROM lot_link WHERE tenant_id = p_tenant AND event_id = p_corrects;
    ELSE
        PERFORM circa_rollup_add(p_tenant, 0, 0, ARRAY[p_corrects], -1);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION circa_derive_group(p_tenant text, p_first bigint, p_last bigint, p_kinds integer)
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
        PERFORM circa_loss_add(p_tenant, p_first, p_last, NULL, 1);
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
    PERFORM circa_interim_derive(p_tenant, p_first, p_last, p_kinds);
    IF p_kinds & 4 <> 0 THEN
        FOR e IN SELECT id, type, item, product, event_time
                   FROM event WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
                    AND item IS NOT NULL AND type <> 'corrected' ORDER BY seq LOOP
            PERFORM circa_apply_item(p_tenant, v_lenient, e.id, e.type, e.item, e.product,
                                     e.event_time);
        END LOOP;
    END IF;
END $$;

-- A time-zone change moves day boundaries: loss_day is rebuilt with the roll-ups.
CREATE OR REPLACE FUNCTION circa_rollup_rebuild(p_tenant text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_head bigint;
BEGIN
    SELECT head_seq INTO v_head FROM tenant WHERE id = p_tenant FOR UPDATE;
    DELETE FROM rollup_day WHERE tenant_id = p_tenant;
    PERFORM circa_rollup_add(p_tenant, 1, v_head, NULL, 1);
    PERFORM circa_derive_transformations(p_tenant, 1, v_head);
    PERFORM circa_rollup_add(p_tenant, 0, 0,
                             ARRAY(SELECT corrected FROM correction WHERE tenant_id = p_tenant), -1);
    DELETE FROM loss_day WHERE tenant_id = p_tenant;
    PERFORM circa_loss_add(p_tenant, 1, v_head, NULL, 1);
    PERFORM circa_loss_add(p_tenant, 0, 0,
                           ARRAY(SELECT corrected FROM correction WHERE tenant_id = p_tenant), -1);
END $$;

-- Existing tenants: both tables from their events.
INSERT INTO interim_event (tenant_id, id, seq, lot, event_time, site, material, product, kg)
SELECT e.tenant_id, e.id, e.seq, e.lot, e.event_time, e.site, e.material, e.product, e.quantity_kg
  FROM event e
 WHERE e.operation IN ('R12', 'R13', 'D13', 'D14', 'D15')
   AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = e.tenant_id
                    AND c.corrected = e.id);
UPDATE interim_event i
   SET next_time = circa_interim_next(i.tenant_id, i.id, i.seq, i.lot, i.event_time)
 WHERE i.lot IS NOT NULL;
INSERT INTO loss_day
SELECT e.tenant_id, (e.event_time AT TIME ZONE t.time_zone)::date, coalesce(e.site, ''),
       coalesce(sum(circa_kg(e.tenant_id, convert_from(e.canon, 'UTF8')::jsonb->'loss', NULL)), 0)
  FROM event e
  JOIN tenant t ON t.id = e.tenant_id
 WHERE e.type = 'transformed'
   AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = e.tenant_id
                    AND c.corrected = e.id)
 GROUP BY 1, 2, 3;
