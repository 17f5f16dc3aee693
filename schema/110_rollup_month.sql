-- /v1/metrics and /v1/flows read whole months from a monthly roll-up (docs/PERFORMANCE.md,
-- Metrics, 110). circa_rollups_in read every rollup_day row of the period (~27,600 for a year at
-- 1 M events, one per day × key) and grouped them: most of /v1/metrics and /v1/flows.
--   rollup_month  rollup_day's key and measures with the day's month in place of the day. It is
--                 kept by statement triggers on rollup_day (transition tables: Σ new − Σ old
--                 per month and key), so every writer of rollup_day — circa_rollup_add, the
--                 transformation roll-ups, correction take-backs, the time-zone rebuild —
--                 keeps it without being changed. One upsert of the group's few keys per
--                 rollup_day statement.
--   circa_rollups_in  the period's whole months from rollup_month, its partial months at
--                 either end from rollup_day; the same rows as before (sums in another order:
--                 float residue in the last digits).
-- Citus: the table is distributed like rollup_day; the triggers and the new circa_rollups_in
-- are plain PostgreSQL only (triggers on distributed tables run on their shards and would write
-- another distributed table from there), so Citus keeps 007's circa_rollups_in over rollup_day
-- and rollup_month stays empty until its maintenance is ported.

CREATE TABLE rollup_month (
    tenant_id      text NOT NULL,
    month          date NOT NULL,                 -- first day of the tenant-local month
    site           text NOT NULL,
    counterpart    text NOT NULL,
    material       text NOT NULL,
    product        text NOT NULL,
    type           text NOT NULL,
    operation      text NOT NULL,
    ewc            text NOT NULL,
    hazardous      boolean NOT NULL,              -- a key, as circa_rollups_in groups by it
    kg             double precision NOT NULL,
    events         bigint NOT NULL,
    value_declared double precision NOT NULL,
    kg_no_value    double precision NOT NULL,
    late           bigint NOT NULL,
    PRIMARY KEY (tenant_id, month, site, counterpart, material, product, type, operation, ewc,
                 hazardous)
);

-- The whole months [mw, lm) inside the days [p_from, p_to); mw = lm = p_to when there are none.
CREATE FUNCTION circa_month_span(p_from date, p_to date, OUT mw date, OUT lm date)
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN a < b THEN a ELSE p_to END, CASE WHEN a < b THEN b ELSE p_to END
      FROM (SELECT (date_trunc('month', (p_from - 1)::timestamp) + interval '1 month')::date AS a,
                   date_trunc('month', p_to::timestamp)::date AS b) x
$$;

DO $citus$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM create_distributed_table('rollup_month', 'tenant_id', colocate_with => 'event');
    END IF;
END
$citus$;

DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    -- rollup_day rows taken away (p_old) and added (p_new) by one statement, into their months.
    EXECUTE $f$
CREATE FUNCTION circa_rollup_month_apply(p_old rollup_day[], p_new rollup_day[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_month AS m
    SELECT x.tenant_id, date_trunc('month', x.day::timestamp)::date, x.site, x.counterpart,
           x.material, x.product, x.type, x.operation, x.ewc, x.hazardous, sum(x.sign * x.kg),
           sum(x.sign * x.events), sum(x.sign * x.value_declared),
           sum(x.sign * x.kg_no_value), sum(x.sign * x.late)
      FROM (SELECT o.*, -1 AS sign FROM unnest(p_old) o
            UNION ALL
            SELECT n.*, 1 FROM unnest(p_new) n) x
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
    ON CONFLICT (tenant_id, month, site, counterpart, material, product, type, operation, ewc,
                 hazardous)
    DO UPDATE SET kg = m.kg + EXCLUDED.kg, events = m.events + EXCLUDED.events,
                  value_declared = m.value_declared + EXCLUDED.value_declared,
                  kg_no_value = m.kg_no_value + EXCLUDED.kg_no_value,
                  late = m.late + EXCLUDED.late;
END $$;
$f$;
    -- A trigger of INSERT has no old transition table and one of DELETE no new one: each
    -- statement reads only those its TG_OP has.
    EXECUTE $f$
CREATE FUNCTION circa_rollup_month_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM circa_rollup_month_apply('{}', ARRAY(SELECT r::rollup_day FROM rollup_new r));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM circa_rollup_month_apply(ARRAY(SELECT r::rollup_day FROM rollup_old r),
                                         ARRAY(SELECT r::rollup_day FROM rollup_new r));
    ELSE
        PERFORM circa_rollup_month_apply(ARRAY(SELECT r::rollup_day FROM rollup_old r), '{}');
    END IF;
    RETURN NULL;
END $$;
$f$;
    EXECUTE $f$
CREATE TRIGGER rollup_month_ins AFTER INSERT ON rollup_day
    REFERENCING NEW TABLE AS rollup_new
    FOR EACH STATEMENT EXECUTE FUNCTION circa_rollup_month_sync();
$f$;
    EXECUTE $f$
CREATE TRIGGER rollup_month_upd AFTER UPDATE ON rollup_day
    REFERENCING OLD TABLE AS rollup_old NEW TABLE AS rollup_new
    FOR EACH STATEMENT EXECUTE FUNCTION circa_rollup_month_sync();
$f$;
    EXECUTE $f$
CREATE TRIGGER rollup_month_del AFTER DELETE ON rollup_day
    REFERENCING OLD TABLE AS rollup_old
    FOR EACH STATEMENT EXECUTE FUNCTION circa_rollup_month_sync();
$f$;

    -- 007's circa_rollups_in, with the whole months of the period read from rollup_month.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_rollups_in(p_tenant text, p_from date, p_to date, p_party text,
                                            p_site text, p_material text, p_product text)
RETURNS TABLE (site text, counterpart text, material text, product text, type text,
               operation text, category text, ewc text, hazardous boolean, kg double precision,
               events bigint, value_declared double precision, kg_no_value double precision,
               late bigint, site_ok boolean, mp_ok boolean)
LANGUAGE sql STABLE AS $$
    WITH r AS (
        SELECT m.site, m.counterpart, m.material, m.product, m.type, m.operation, m.ewc,
               m.hazardous, m.kg, m.events, m.value_declared, m.kg_no_value, m.late
          FROM rollup_month m
         WHERE m.tenant_id = p_tenant AND m.month >= (circa_month_span(p_from, p_to)).mw
           AND m.month < (circa_month_span(p_from, p_to)).lm
        UNION ALL
        SELECT d.site, d.counterpart, d.material, d.product, d.type, d.operation, d.ewc,
               d.hazardous, d.kg, d.events, d.value_declared, d.kg_no_value, d.late
          FROM rollup_day d
         WHERE d.tenant_id = p_tenant AND d.day >= p_from
           AND d.day < (circa_month_span(p_from, p_to)).mw
        UNION ALL
        SELECT d.site, d.counterpart, d.material, d.product, d.type, d.operation, d.ewc,
               d.hazardous, d.kg, d.events, d.value_declared, d.kg_no_value, d.late
          FROM rollup_day d
         WHERE d.tenant_id = p_tenant AND d.day >= (circa_month_span(p_from, p_to)).lm
           AND d.day < p_to
    )
    SELECT r.site, r.counterpart, r.material, r.product, r.type, r.operation,
           coalesce(o.category, ''), r.ewc, r.hazardous, sum(r.kg),
           sum(r.events)::bigint, sum(r.value_declared), sum(r.kg_no_value), sum(r.late)::bigint,
           (p_site IS NULL OR r.site = p_site)
             AND (p_party IS NULL OR EXISTS (SELECT 1 FROM site s WHERE s.tenant_id = p_tenant
                                              AND s.code = r.site AND s.party = p_party)),
           (p_material IS NULL OR r.material = p_material)
             AND (p_product IS NULL OR r.product = p_product)
      FROM r
      LEFT JOIN rd_operation o ON o.code = r.operation
     GROUP BY r.site, r.counterpart, r.material, r.product, r.type, r.operation, o.category,
              r.ewc, r.hazardous
    HAVING sum(r.events) <> 0 OR sum(r.kg) <> 0
$$;
$f$;
END $do$;

-- Existing tenants (not on Citus, where nothing keeps the table yet).
DO $backfill$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    INSERT INTO rollup_month
    SELECT tenant_id, date_trunc('month', day::timestamp)::date, site, counterpart, material,
           product, type,
           operation, ewc, hazardous, sum(kg), sum(events), sum(value_declared),
           sum(kg_no_value), sum(late)
      FROM rollup_day
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10;
END
$backfill$;
