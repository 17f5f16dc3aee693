-- interim_kg from a roll-up of interim_event (docs/PERFORMANCE.md, Metrics, 111). 016's
-- circa_interim read every interim event of the period still interim now (5,194 rows for the
-- year at 1 M events, ten times that at 10 M) and those whose lot moved on after `to`.
--   interim_day  per tenant-local event day, local day its lot moved on (next_day: 'infinity'
--                while it has not, or when the event has no lot), site, material, product and
--                whether it has no lot: events and kg. An interim event counts for [from, to)
--                (whole local days fd, td) when fd <= day < td and next_day >= td, the same as
--                016's next_time >= to: `to` is local midnight of td. Kept by statement
--                triggers on interim_event (Σ new − Σ old), so circa_interim_derive and the
--                corrections keep it unchanged; rebuilt with the roll-ups when the tenant's
--                time zone changes (circa_rollup_rebuild, below).
--   circa_interim  a sum over the rows with next_day >= td (an index range: the events still
--                interim and the few that moved on after `to`).
-- Citus: the table is distributed like interim_event; the triggers and both functions are
-- plain PostgreSQL only (triggers on distributed tables run on their shards and would write
-- another distributed table from there), so Citus keeps 016's circa_interim.

CREATE TABLE interim_day (
    tenant_id text NOT NULL,
    next_day  date NOT NULL,
    day       date NOT NULL,
    site      text NOT NULL,
    material  text NOT NULL,
    product   text NOT NULL,
    no_lot    boolean NOT NULL,
    events    bigint NOT NULL,
    kg        double precision NOT NULL,
    PRIMARY KEY (tenant_id, next_day, day, site, material, product, no_lot)
);

DO $citus$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM create_distributed_table('interim_day', 'tenant_id', colocate_with => 'event');
    END IF;
END
$citus$;

DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    -- The local day an interim event's lot moved on ('infinity': not yet, or no lot).
    EXECUTE $f$
CREATE FUNCTION circa_interim_next_day(p_tz text, p_lot text, p_next timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_lot IS NULL OR p_next IS NULL THEN 'infinity'::date
                ELSE (p_next AT TIME ZONE p_tz)::date END
$$;
$f$;
    -- interim_event rows taken away (p_old) and added (p_new) by one statement, into their days.
    EXECUTE $f$
CREATE FUNCTION circa_interim_day_apply(p_old interim_event[], p_new interim_event[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO interim_day AS d
    SELECT x.tenant_id, circa_interim_next_day(t.time_zone, x.lot, x.next_time),
           (x.event_time AT TIME ZONE t.time_zone)::date, coalesce(x.site, ''),
           coalesce(x.material, ''), coalesce(x.product, ''), x.lot IS NULL,
           sum(x.sign)::bigint, sum(x.sign * coalesce(x.kg, 0))
      FROM (SELECT o.*, -1 AS sign FROM unnest(p_old) o
            UNION ALL
            SELECT n.*, 1 FROM unnest(p_new) n) x
      JOIN tenant t ON t.id = x.tenant_id
     GROUP BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (tenant_id, next_day, day, site, material, product, no_lot)
    DO UPDATE SET events = d.events + EXCLUDED.events, kg = d.kg + EXCLUDED.kg;
END $$;
$f$;
    -- A trigger of INSERT has no old transition table and one of DELETE no new one: each
    -- statement reads only those its TG_OP has. circa_interim_derive updates one row per
    -- statement, so UPDATE is a row trigger: no transition tables to fill.
    EXECUTE $f$
CREATE FUNCTION circa_interim_day_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        PERFORM circa_interim_day_apply(ARRAY[OLD], ARRAY[NEW]);
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM circa_interim_day_apply('{}', ARRAY(SELECT r::interim_event FROM interim_new r));
    ELSE
        PERFORM circa_interim_day_apply(ARRAY(SELECT r::interim_event FROM interim_old r), '{}');
    END IF;
    RETURN NULL;
END $$;
$f$;
    EXECUTE $f$
CREATE TRIGGER interim_day_ins AFTER INSERT ON interim_event
    REFERENCING NEW TABLE AS interim_new
    FOR EACH STATEMENT EXECUTE FUNCTION circa_interim_day_sync();
$f$;
    EXECUTE $f$
CREATE TRIGGER interim_day_upd AFTER UPDATE ON interim_event
    FOR EACH ROW EXECUTE FUNCTION circa_interim_day_sync();
$f$;
    EXECUTE $f$
CREATE TRIGGER interim_day_del AFTER DELETE ON interim_event
    REFERENCING OLD TABLE AS interim_old
    FOR EACH STATEMENT EXECUTE FUNCTION circa_interim_day_sync();
$f$;

    -- The interim_day rows of one tenant from its interim_event rows (its time zone's days).
    EXECUTE $f$
CREATE FUNCTION circa_interim_day_rebuild(p_tenant text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM interim_day WHERE tenant_id = p_tenant;
    INSERT INTO interim_day
    SELECT x.tenant_id, circa_interim_next_day(t.time_zone, x.lot, x.next_time),
           (x.event_time AT TIME ZONE t.time_zone)::date, coalesce(x.site, ''),
           coalesce(x.material, ''), coalesce(x.product, ''), x.lot IS NULL,
           count(*), sum(coalesce(x.kg, 0))
      FROM interim_event x
      JOIN tenant t ON t.id = x.tenant_id
     WHERE x.tenant_id = p_tenant
     GROUP BY 1, 2, 3, 4, 5, 6, 7;
END $$;
$f$;

    -- 019's circa_rollup_rebuild, then interim_day (its days follow the time zone too).
    EXECUTE $f$
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
    PERFORM circa_item_day_rebuild(p_tenant);
    PERFORM circa_interim_day_rebuild(p_tenant);
END $$;
$f$;

    -- 016's circa_interim over interim_day. circa_metrics passes whole local days; any other
    -- bound is answered from interim_event as 016 did.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_interim(p_tenant text, p_from timestamptz, p_to timestamptz,
                                         p_party text, p_site text, p_material text,
                                         p_product text, OUT kg double precision,
                                         OUT events bigint, OUT untracked_kg double precision)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_tz text;
    fd date;
    td date;
BEGIN
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    fd := (p_from AT TIME ZONE v_tz)::date;
    td := (p_to AT TIME ZONE v_tz)::date;
    IF fd::timestamp AT TIME ZONE v_tz = p_from AND td::timestamp AT TIME ZONE v_tz = p_to THEN
        SELECT coalesce(sum(d.kg), 0), coalesce(sum(d.events), 0),
               coalesce(sum(d.kg) FILTER (WHERE d.no_lot), 0)
          INTO kg, events, untracked_kg
          FROM interim_day d
         WHERE d.tenant_id = p_tenant AND d.next_day >= td AND d.day >= fd AND d.day < td
           AND (p_site IS NULL OR d.site = p_site)
           AND (p_party IS NULL OR EXISTS (SELECT 1 FROM site s WHERE s.tenant_id = p_tenant
                                            AND s.code = d.site AND s.party = p_party))
           AND (p_material IS NULL OR d.material = p_material)
           AND (p_product IS NULL OR d.product = p_product);
        RETURN;
    END IF;
    SELECT coalesce(sum(e.kg), 0), count(*),
           coalesce(sum(e.kg) FILTER (WHERE e.lot IS NULL), 0)
      INTO kg, events, untracked_kg
      FROM (SELECT * FROM interim_event
             WHERE tenant_id = p_tenant AND (lot IS NULL OR next_time IS NULL)
               AND event_time >= p_from AND event_time < p_to
            UNION ALL
            SELECT * FROM interim_event
             WHERE tenant_id = p_tenant AND next_time >= p_to AND lot IS NOT NULL
               AND event_time >= p_from AND event_time < p_to) e
     WHERE (p_site IS NULL OR e.site = p_site)
       AND (p_party IS NULL OR EXISTS (SELECT 1 FROM site s WHERE s.tenant_id = p_tenant
                                        AND s.code = e.site AND s.party = p_party))
       AND (p_material IS NULL OR e.material = p_material)
       AND (p_product IS NULL OR e.product = p_product);
END $$;
$f$;

    -- Existing tenants.
    PERFORM circa_interim_day_rebuild(id) FROM tenant;
END $do$;
