-- Metrics on demand (docs/METRICS.md, docs/METRICS-API.md): circularity metrics from the daily
-- roll-ups, Sankey flows, item lives, lot lineage, the product MCI and tenant settings. Every
-- function takes the tenant first and reads only that tenant's rows; each answers one jsonb
-- document computed from one snapshot (STABLE), so every number matches the block it names.

-- Indexes for the few metrics that must read events (small, partial: rare event kinds).
CREATE INDEX IF NOT EXISTS event_interim ON event (tenant_id, event_time)
    WHERE operation IN ('R12', 'R13', 'D13', 'D14', 'D15');
CREATE INDEX IF NOT EXISTS event_transformed ON event (tenant_id, event_time)
    WHERE type = 'transformed';
CREATE INDEX IF NOT EXISTS event_item_retired ON event (tenant_id, event_time)
    WHERE item IS NOT NULL AND type IN ('recycled', 'energy_recovered', 'disposed');
CREATE INDEX IF NOT EXISTS event_product ON event (tenant_id, product) WHERE product IS NOT NULL;
CREATE INDEX IF NOT EXISTS lifecycle_started ON lifecycle (tenant_id, started);
CREATE INDEX IF NOT EXISTS lifecycle_ended ON lifecycle (tenant_id, ended) WHERE ended IS NOT NULL;

-- A rate, or NULL when the denominator is zero (METRICS.md: never 0 for "no data").
CREATE OR REPLACE FUNCTION circa_rate(p_num double precision, p_den double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_den > 0 THEN coalesce(p_num, 0) / p_den END
$$;

-- One metric in the API's shape.
CREATE OR REPLACE FUNCTION circa_metric(p_value anyelement, p_num double precision,
                                        p_den double precision, p_inputs jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('value', to_jsonb(p_value), 'numerator_kg', p_num,
                              'denominator_kg', p_den, 'inputs', coalesce(p_inputs, '{}'))
$$;

-- A request's bound: a date is midnight in the tenant's zone, anything else an RFC 3339 time.
-- A malformed value raises class 22, which circad answers with 400.
CREATE OR REPLACE FUNCTION circa_bound(p_tz text, p_v text) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN length(p_v) = 10 THEN p_v::date::timestamp AT TIME ZONE p_tz
                ELSE p_v::timestamptz END
$$;

-- The whole local days [from_day, to_day) that cover [from, to): roll-ups are daily, so a
-- time inside a day widens the period to that whole day (the answer shows the days used).
CREATE OR REPLACE FUNCTION circa_days(p_tenant text, p_from text, p_to text,
                                      OUT from_day date, OUT to_day date, OUT tz text,
                                      OUT from_ts timestamptz, OUT to_ts timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_to timestamp;
BEGIN
    SELECT time_zone INTO tz FROM tenant WHERE id = p_tenant;
    from_day := (circa_bound(tz, p_from) AT TIME ZONE tz)::date;
    v_to := circa_bound(tz, p_to) AT TIME ZONE tz;
    to_day := v_to::date + CASE WHEN v_to = v_to::date THEN 0 ELSE 1 END;
    IF to_day <= from_day THEN
        RAISE EXCEPTION 'to must be after from' USING ERRCODE = '22023';
    END IF;
    from_ts := from_day::timestamp AT TIME ZONE tz;
    to_ts := to_day::timestamp AT TIME ZONE tz;
END $$;

-- The tenant's roll-ups over whole days, summed over the days, with the operation's Eurostat
-- category. site_ok: the row's site is in the party/site scope; mp_ok: it matches the
-- material/product filter. NULL filters match everything.
CREATE OR REPLACE FUNCTION circa_rollups_in(p_tenant text, p_from date, p_to date, p_party text,
                                            p_site text, p_material text, p_product text)
RETURNS TABLE (site text, counterpart text, material text, product text, type text,
               operation text, category text, ewc text, hazardous boolean, kg double precision,
               events bigint, value_declared double precision, kg_no_value double precision,
               late bigint, site_ok boolean, mp_ok boolean)
LANGUAGE sql STABLE AS $$
    SELECT r.site, r.counterpart, r.material, r.product, r.type, r.operation,
           coalesce(o.category, ''), r.ewc, r.hazardous, sum(r.kg), sum(r.events)::bigint,
           sum(r.value_declared), sum(r.kg_no_value), sum(r.late)::bigint,
           (p_site IS NULL OR r.site = p_site)
             AND (p_party IS NULL OR EXISTS (SELECT 1 FROM site s WHERE s.tenant_id = p_tenant
                                              AND s.code = r.site AND s.party = p_party)),
           (p_material IS NULL OR r.material = p_material)
             AND (p_product IS NULL OR r.product = p_product)
      FROM rollup_day r
      LEFT JOIN rd_operation o ON o.code = r.operation
     WHERE r.tenant_id = p_tenant AND r.day >= p_from AND r.day < p_to
     GROUP BY r.site, r.counterpart, r.material, r.product, r.type, r.operation, o.category,
              r.ewc, r.hazardous
    HAVING sum(r.events) <> 0 OR sum(r.kg) <> 0
$$;

-- Per product of the tenant: the bill of materials as fractions of its mass (lines without
-- mass_kg share the product's mass equally), and the value per kg of its secondary content.
CREATE OR REPLACE FUNCTION circa_bom(p_tenant text)
RETURNS TABLE (product text, mass_kg double precision, secondary double precision,
               recycled double precision, reused double precision, renewable double precision,
               secondary_value_per_kg double precision, e_c double precision,
               e_f double precision, e_c_known boolean, e_f_known boolean)
LANGUAGE sql STABLE AS $$
    WITH line AS (
        SELECT p.code, p.mass_kg AS pmass,
               coalesce((b->>'mass_kg')::float8,
                        p.mass_kg / jsonb_array_length(p.doc->'bom'), 1) AS w,
               coalesce((b->>'recycled_fraction')::float8, 0) AS rf,
               coalesce((b->>'reused_fraction')::float8, 0) AS uf,
               coalesce((b->>'renewable_fraction')::float8,
                        CASE WHEN m.renewable THEN 1 - coalesce((b->>'recycled_fraction')::float8, 0)
                                                     - coalesce((b->>'reused_fraction')::float8, 0)
                             ELSE 0 END) AS sf,
               coalesce(m.value_per_kg, 0) AS vpk,
               (m.doc->>'recycling_efficiency_eol')::float8 AS ec,
               (m.doc->>'recycling_efficiency_feedstock')::float8 AS ef
          FROM product p
          CROSS JOIN LATERAL jsonb_array_elements(
              CASE WHEN jsonb_typeof(p.doc->'bom') = 'array' THEN p.doc->'bom' ELSE '[]' END) b
          LEFT JOIN material m ON m.tenant_id = p.tenant_id AND m.code = b->>'material'
         WHERE p.tenant_id = p_tenant
    )
    SELECT code, coalesce(max(pmass), sum(w)), sum(w * (rf + uf)) / sum(w), sum(w * rf) / sum(w),
           sum(w * uf) / sum(w), sum(w * sf) / sum(w), sum(w * (rf + uf) * vpk) / sum(w),
           sum(w * coalesce(ec, 1)) / sum(w), sum(w * coalesce(ef, 1)) / sum(w),
           bool_and(ec IS NOT NULL), bool_and(ef IS NOT NULL)
      FROM line GROUP BY code HAVING sum(w) > 0
$$;

-- Mass of events whose last operation in [from, to) is interim (R12, R13, D13–D15): an interim
-- event whose lot has no later flow or transformation before `to`. An interim event without a
-- lot cannot be followed and counts as still interim.
CREATE OR REPLACE FUNCTION circa_interim(p_tenant text, p_from timestamptz, p_to timestamptz,
                                         p_party text, p_site text, p_material text,
                                         p_product text, OUT kg double precision,
                                         OUT events bigint, OUT untracked_kg double precision)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(e.quantity_kg), 0), count(*),
           coalesce(sum(e.quantity_kg) FILTER (WHERE e.lot IS NULL), 0)
      FROM event e
     WHERE e.tenant_id = p_tenant AND e.operation IN ('R12', 'R13', 'D13', 'D14', 'D15')
       AND e.event_time >= p_from AND e.event_time < p_to
       AND (p_site IS NULL OR e.site = p_site)
       AND (p_party IS NULL OR EXISTS (SELECT 1 FROM site s WHERE s.tenant_id = p_tenant
                                        AND s.code = e.site AND s.party = p_party))
       AND (p_material IS NULL OR e.material = p_material)
       AND (p_product IS NULL OR e.product = p_product)
       AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant AND c.corrected = e.id)
       AND (e.lot IS NULL OR (
            NOT EXISTS (SELECT 1 FROM event n
                         WHERE n.tenant_id = p_tenant AND n.lot = e.lot AND n.id <> e.id
                           AND n.type NOT IN ('corrected', 'measured', 'observed')
                           AND (n.event_time > e.event_time
                                OR n.event_time = e.event_time AND n.seq > e.seq)
                           AND n.event_time < p_to
                           AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                                            AND c.corrected = n.id))
            AND NOT EXISTS (SELECT 1 FROM lot_link l
                             WHERE l.tenant_id = p_tenant AND l.input_lot = e.lot
                               AND l.event_time >= e.event_time AND l.event_time < p_to
                               AND NOT EXISTS (SELECT 1 FROM correction c
                                                WHERE c.tenant_id = p_tenant
                                                  AND c.corrected = l.event_id))))
$$;

-- Declared process losses (kg) of the transformations at in-scope sites in [from, to).
CREATE OR REPLACE FUNCTION circa_losses(p_tenant text, p_from timestamptz, p_to timestamptz,
                                        p_party text, p_site text) RETURNS double precision
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(circa_kg(p_tenant, convert_from(e.canon, 'UTF8')::jsonb->'loss', NULL)), 0)
      FROM event e
     WHERE e.tenant_id = p_tenant AND e.type = 'transformed'
       AND e.event_time >= p_from AND e.event_time < p_to
       AND (p_site IS NULL OR e.site = p_site)
       AND (p_party IS NULL OR EXISTS (SELECT 1 FROM site s WHERE s.tenant_id = p_tenant
                                        AND s.code = e.site AND s.party = p_party))
       AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant AND c.corrected = e.id)
$$;

-- Item metrics over [from, to): lives per item (items with a life started in the period, all
-- their lives started before `to`), use days of the lives that ended in the period, the return
-- rate of the items put on market in the period, and the fates of the items retired in it.
CREATE OR REPLACE FUNCTION circa_item_metrics(p_tenant text, p_from timestamptz,
                                              p_to timestamptz, p_product text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH its AS (
        SELECT DISTINCT l.item FROM lifecycle l
         WHERE l.tenant_id = p_tenant AND l.started >= p_from AND l.started < p_to
           AND (p_product IS NULL OR l.product = p_product)
    ), lives AS (
        SELECT its.item, (SELECT count(*) FROM lifecycle l WHERE l.tenant_id = p_tenant
                           AND l.item = its.item AND l.started < p_to) AS n
          FROM its
    ), dist AS (
        SELECT coalesce(jsonb_object_agg(n::text, c), '{}') AS d
          FROM (SELECT n, count(*) AS c FROM lives GROUP BY n) x
    ), used AS (
        SELECT extract(epoch FROM l.ended - l.started) / 86400 AS days
          FROM lifecycle l
         WHERE l.tenant_id = p_tenant AND l.ended >= p_from AND l.ended < p_to
           AND (p_product IS NULL OR l.product = p_product)
    ), market AS (
        SELECT l.item, bool_or(EXISTS (SELECT 1 FROM lifecycle k WHERE k.tenant_id = p_tenant
                                         AND k.item = l.item AND k.started >= l.started
                                         AND k.end_type IN ('returned', 'collected')
                                         AND k.ended < p_to)) AS came_back
          FROM lifecycle l
         WHERE l.tenant_id = p_tenant AND l.started >= p_from AND l.started < p_to
           AND l.start_type = 'put_on_market'
           AND (p_product IS NULL OR l.product = p_product)
         GROUP BY l.item
    ), retired AS (
        SELECT e.type, count(*) AS n, coalesce(sum(e.quantity_kg), 0) AS kg
          FROM event e
          LEFT JOIN item i ON i.tenant_id = p_tenant AND i.id = e.item
         WHERE e.tenant_id = p_tenant AND e.item IS NOT NULL
           AND e.type IN ('recycled', 'energy_recovered', 'disposed')
           AND e.event_time >= p_from AND e.event_time < p_to
           AND (p_product IS NULL OR coalesce(e.product, i.product) = p_product)
           AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                            AND c.corrected = e.id)
         GROUP BY e.type
    ), agg AS (
        SELECT (SELECT count(*) FROM lives) AS items, (SELECT coalesce(sum(n), 0) FROM lives) AS lives,
               (SELECT count(*) FROM used) AS ended,
               (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY days) FROM used) AS median,
               (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY days) FROM used) AS p90,
               (SELECT avg(days) FROM used) AS mean,
               (SELECT count(*) FROM market) AS on_market,
               (SELECT count(*) FILTER (WHERE came_back) FROM market) AS came_back,
               (SELECT coalesce(sum(n), 0) FROM retired) AS retired_n,
               (SELECT coalesce(sum(kg), 0) FROM retired) AS retired_kg
    )
    SELECT jsonb_build_object(
        'lives_per_item', circa_metric(circa_rate(a.lives, a.items), NULL, NULL,
            jsonb_build_object('items', a.items, 'lives', a.lives, 'distribution', d.d)),
        'use_days', circa_metric(a.median, NULL, NULL,
            jsonb_build_object('lives_ended', a.ended, 'median', a.median, 'p90', a.p90,
                               'mean', a.mean)),
        'return_rate', circa_metric(circa_rate(a.came_back, a.on_market), NULL, NULL,
            jsonb_build_object('items_put_on_market', a.on_market, 'items_returned', a.came_back)),
        'fate', circa_metric(
            CASE WHEN a.retired_n > 0 THEN
                (SELECT jsonb_object_agg(t.f, coalesce(r.n, 0)::float8 / a.retired_n)
                   FROM unnest(ARRAY['recycled', 'energy_recovered', 'disposed']) t(f)
                   LEFT JOIN retired r ON r.type = t.f) END,
            a.retired_kg, NULL,
            (SELECT jsonb_build_object('items_retired', a.retired_n, 'items',
                        jsonb_object_agg(t.f, coalesce(r.n, 0)), 'kg',
                        jsonb_object_agg(t.f, coalesce(r.kg, 0)))
               FROM unnest(ARRAY['recycled', 'energy_recovered', 'disposed']) t(f)
               LEFT JOIN retired r ON r.type = t.f)))
      FROM agg a, dist d
$$;


-- Sums over the in-scope roll-ups: treatment by Eurostat category, re-use, flows.
CREATE OR REPLACE FUNCTION circa_sums(p_tenant text, p_from date, p_to date, p_party text,
                                      p_site text, p_material text, p_product text)
RETURNS TABLE (wg double precision, wg_haz double precision, rec double precision,
               er double precision, inc double precision, lf double precision,
               od double precision, pre double precision, reused double precision,
               repaired double precision, refurbished double precision,
               remanufactured double precision, repurposed double precision,
               returned double precision, consumed double precision, t_in double precision,
               t_out double precision, late bigint, events bigint, by_ewc jsonb)
LANGUAGE sql STABLE AS $$
    WITH r AS (
        SELECT * FROM circa_rollups_in(p_tenant, p_from, p_to, p_party, p_site, p_material,
                                       p_product) WHERE site_ok AND mp_ok
    )
    SELECT coalesce(sum(kg) FILTER (WHERE type = 'waste_generated'), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'waste_generated' AND hazardous), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'recycled' AND category = 'recycling'), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'energy_recovered' AND category = 'energy_recovery'), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'disposed' AND category = 'incineration'), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'disposed' AND category = 'landfill'), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'disposed' AND category = 'other_disposal'), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'disposed' AND category = 'pretreatment'), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'reused'), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'repaired'), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'refurbished'), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'remanufactured'), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'repurposed'), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'returned'), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'consumed'), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'transformed_in'), 0),
           coalesce(sum(kg) FILTER (WHERE type = 'transformed_out'), 0),
           coalesce(sum(late) FILTER (WHERE type NOT IN ('transformed_in', 'transformed_out')), 0)::bigint,
           coalesce(sum(events) FILTER (WHERE type NOT IN ('transformed_in', 'transformed_out')), 0)::bigint,
           (SELECT coalesce(jsonb_object_agg(ewc, kg), '{}')
              FROM (SELECT ewc, sum(kg) AS kg FROM r WHERE type = 'waste_generated'
                     GROUP BY ewc ORDER BY ewc) x)
      FROM r
$$;

-- Circular inflow: what was produced in scope, split by its product's bill of materials
-- (recycled + reused content is secondary, renewable_fraction is renewable); produced lots
-- without a bill count as renewable when their material is.
CREATE OR REPLACE FUNCTION circa_inflow(p_tenant text, p_from date, p_to date, p_party text,
                                        p_site text, p_material text, p_product text,
                                        OUT kg double precision, OUT secondary double precision,
                                        OUT renewable double precision,
                                        OUT secondary_value double precision,
                                        OUT without_bom_kg double precision)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(r.kg), 0), coalesce(sum(r.kg * b.secondary), 0),
           coalesce(sum(r.kg * coalesce(b.renewable, CASE WHEN mt.renewable THEN 1 ELSE 0 END)), 0),
           coalesce(sum(r.kg * b.secondary_value_per_kg), 0),
           coalesce(sum(r.kg) FILTER (WHERE b.product IS NULL), 0)
      FROM circa_rollups_in(p_tenant, p_from, p_to, p_party, p_site, p_material, p_product) r
      LEFT JOIN circa_bom(p_tenant) b ON b.product = r.product
      LEFT JOIN material mt ON mt.tenant_id = p_tenant AND mt.code = r.material
     WHERE r.site_ok AND r.mp_ok AND r.type = 'produced'
$$;

-- Value of recovery outputs by strategy: declared value, else kg × the material's reference
-- value_per_kg; retention compares with the same mass as new (materials with a reference value).
CREATE OR REPLACE FUNCTION circa_value(p_tenant text, p_from date, p_to date, p_party text,
                                       p_site text, p_material text, p_product text,
                                       OUT by_strategy jsonb, OUT kg_by_strategy jsonb,
                                       OUT total double precision, OUT kg double precision,
                                       OUT unvalued_kg double precision,
                                       OUT known_value double precision,
                                       OUT known_new_value double precision,
                                       OUT known_kg double precision)
LANGUAGE sql STABLE AS $$
    WITH x AS (
        SELECT CASE r.type WHEN 'reused' THEN 'reuse' WHEN 'repaired' THEN 'repair'
                           WHEN 'refurbished' THEN 'refurbish'
                           WHEN 'remanufactured' THEN 'remanufacture'
                           WHEN 'repurposed' THEN 'repurpose' WHEN 'recycled' THEN 'recycling'
                           WHEN 'energy_recovered' THEN 'energy_recovery' END AS strategy,
               r.kg, r.value_declared + r.kg_no_value * coalesce(mt.value_per_kg, 0) AS val,
               CASE WHEN mt.value_per_kg IS NULL THEN r.kg_no_value ELSE 0 END AS unvalued,
               mt.value_per_kg AS vpk
          FROM circa_rollups_in(p_tenant, p_from, p_to, p_party, p_site, p_material, p_product) r
          LEFT JOIN material mt ON mt.tenant_id = p_tenant AND mt.code = r.material
         WHERE r.site_ok AND r.mp_ok
           AND (r.type IN ('reused', 'repaired', 'refurbished', 'remanufactured', 'repurposed')
                OR r.type = 'recycled' AND r.category = 'recycling'
                OR r.type = 'energy_recovered' AND r.category = 'energy_recovery')
    ), s AS (
        SELECT strategy, sum(val) AS val, sum(kg) AS kg FROM x GROUP BY strategy
    )
    SELECT (SELECT coalesce(jsonb_object_agg(strategy, val ORDER BY strategy), '{}') FROM s),
           (SELECT coalesce(jsonb_object_agg(strategy, kg ORDER BY strategy), '{}') FROM s),
           coalesce(sum(val), 0), coalesce(sum(kg), 0), coalesce(sum(unvalued), 0),
           coalesce(sum(val) FILTER (WHERE vpk IS NOT NULL), 0),
           coalesce(sum(kg * vpk) FILTER (WHERE vpk IS NOT NULL), 0),
           coalesce(sum(kg) FILTER (WHERE vpk IS NOT NULL), 0)
      FROM x
$$;

-- Mass shipped from in-scope sites that no receipt or collection at the destination (naming
-- the sender as from_site) accounts for, per sender → destination pair over the period.
CREATE OR REPLACE FUNCTION circa_unknown_fate(p_tenant text, p_from date, p_to date,
                                              p_party text, p_site text, p_material text,
                                              p_product text, OUT kg double precision,
                                              OUT shipped double precision, OUT by_destination jsonb)
LANGUAGE sql STABLE AS $$
    WITH x AS (
        SELECT * FROM circa_rollups_in(p_tenant, p_from, p_to, p_party, p_site, p_material,
                                       p_product)
         WHERE mp_ok AND type IN ('shipped', 'received', 'collected') AND counterpart <> ''
    ), ship AS (
        SELECT site AS src, counterpart AS dst, sum(kg) AS kg FROM x
         WHERE type = 'shipped' AND site_ok GROUP BY 1, 2
    ), got AS (
        SELECT counterpart AS src, site AS dst, sum(kg) AS kg FROM x
         WHERE type <> 'shipped' GROUP BY 1, 2
    ), miss AS (
        SELECT s.dst, sum(greatest(s.kg - coalesce(g.kg, 0), 0)) AS kg, sum(s.kg) AS shipped
          FROM ship s LEFT JOIN got g ON g.src = s.src AND g.dst = s.dst GROUP BY s.dst
    )
    SELECT coalesce(sum(kg), 0), coalesce(sum(shipped), 0),
           coalesce(jsonb_object_agg(dst, kg ORDER BY dst) FILTER (WHERE kg > 0), '{}')
      FROM miss
$$;

-- GET /v1/metrics: every metric of METRICS.md the data supports, for a scope and [from, to).
CREATE OR REPLACE FUNCTION circa_metrics(p_tenant text, p_from text, p_to text, p_party text,
                                         p_site text, p_material text, p_product text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    d record; s record; fl record; v record; u record; it record;
    t tenant%ROWTYPE;
    losses double precision;
    final double precision;
    reuse double precision;
    reuse3 double precision;
    outflow double precision;
    total double precision;
    m jsonb;
BEGIN
    SELECT * INTO t FROM tenant WHERE id = p_tenant;
    d := circa_days(p_tenant, p_from, p_to);
    SELECT * INTO s FROM circa_sums(p_tenant, d.from_day, d.to_day, p_party, p_site, p_material, p_product);
    fl := circa_inflow(p_tenant, d.from_day, d.to_day, p_party, p_site, p_material, p_product);
    v := circa_value(p_tenant, d.from_day, d.to_day, p_party, p_site, p_material, p_product);
    u := circa_unknown_fate(p_tenant, d.from_day, d.to_day, p_party, p_site, p_material, p_product);
    it := circa_interim(p_tenant, d.from_ts, d.to_ts, p_party, p_site, p_material, p_product);
    losses := circa_losses(p_tenant, d.from_ts, d.to_ts, p_party, p_site);
    final := s.rec + s.er + s.inc + s.lf + s.od;
    reuse := s.reused + s.repaired + s.refurbished + s.remanufactured;
    reuse3 := s.reused + s.refurbished + s.remanufactured;
    outflow := reuse3 + final;
    total := reuse + final;
    m := jsonb_build_object(
        'waste_generated_kg', circa_metric(s.wg, s.wg, NULL::float8, jsonb_build_object(
            'by_ewc', s.by_ewc, 'hazardous_kg', s.wg_haz, 'non_hazardous_kg', s.wg - s.wg_haz)),
        'recovery_rate', circa_metric(circa_rate(s.rec + s.er, final), s.rec + s.er, final,
            jsonb_build_object('recycling_kg', s.rec, 'energy_recovery_kg', s.er,
                               'incineration_kg', s.inc, 'landfill_kg', s.lf,
                               'other_disposal_kg', s.od, 'pretreatment_kg', s.pre,
                               'interim_kg', it.kg)),
        'recycling_rate', circa_metric(circa_rate(s.rec, final), s.rec, final,
            jsonb_build_object('recycling_kg', s.rec, 'final_treatment_kg', final)),
        'reuse_rate', circa_metric(circa_rate(reuse, s.wg + s.returned), reuse, s.wg + s.returned,
            jsonb_build_object('reused_kg', s.reused, 'repaired_kg', s.repaired,
                               'refurbished_kg', s.refurbished,
                               'remanufactured_kg', s.remanufactured,
                               'waste_generated_kg', s.wg, 'returned_kg', s.returned)),
        'landfill_diversion_rate', circa_metric(1 - circa_rate(s.lf, s.wg), s.wg - s.lf, s.wg,
            jsonb_build_object('landfill_kg', s.lf, 'waste_generated_kg', s.wg)),
        'landfill_diversion_rate_strict', circa_metric(
            1 - circa_rate(s.lf + s.inc + s.er, s.wg), s.wg - s.lf - s.inc - s.er, s.wg,
            jsonb_build_object('landfill_kg', s.lf, 'incineration_kg', s.inc,
                               'energy_recovery_kg', s.er, 'waste_generated_kg', s.wg)),
        'waste_hierarchy', circa_metric(CASE WHEN total > 0 THEN jsonb_build_object(
                'reuse', reuse / total, 'recycling', s.rec / total,
                'energy_recovery', s.er / total, 'incineration', s.inc / total,
                'landfill', s.lf / total, 'other_disposal', s.od / total) END, NULL, total,
            jsonb_build_object('reuse_kg', reuse, 'recycling_kg', s.rec,
                               'energy_recovery_kg', s.er, 'incineration_kg', s.inc,
                               'landfill_kg', s.lf, 'other_disposal_kg', s.od)),
        'interim_kg', circa_metric(it.kg, it.kg, NULL::float8,
            jsonb_build_object('events', it.events, 'without_lot_kg', it.untracked_kg)),
        'circular_inflow_rate', circa_metric(circa_rate(fl.secondary + fl.renewable, fl.kg),
            fl.secondary + fl.renewable, fl.kg,
            jsonb_build_object('inflow_kg', fl.kg, 'secondary_kg', fl.secondary,
                               'renewable_kg', fl.renewable, 'without_bom_kg', fl.without_bom_kg)),
        'circular_outflow_rate', circa_metric(circa_rate(reuse3 + s.rec, outflow),
            reuse3 + s.rec, outflow,
            jsonb_build_object('reuse_kg', reuse3, 'recycling_kg', s.rec,
                               'energy_recovery_kg', s.er, 'incineration_kg', s.inc,
                               'landfill_kg', s.lf, 'other_disposal_kg', s.od)),
        'material_circularity', circa_metric(
            circa_rate(fl.secondary + fl.renewable + reuse3 + s.rec, fl.kg + outflow),
            fl.secondary + fl.renewable + reuse3 + s.rec, fl.kg + outflow,
            jsonb_build_object('inflow_kg', fl.kg, 'circular_inflow_kg', fl.secondary + fl.renewable,
                               'outflow_kg', outflow, 'circular_outflow_kg', reuse3 + s.rec)),
        'circular_material_use_rate', circa_metric(circa_rate(s.rec, s.consumed + s.rec), s.rec,
            s.consumed + s.rec,
            jsonb_build_object('recycling_kg', s.rec, 'consumed_kg', s.consumed)),
        'value_recovered', circa_metric(v.total, v.kg, NULL::float8,
            jsonb_build_object('currency', t.currency, 'by_strategy', v.by_strategy,
                               'kg_by_strategy', v.kg_by_strategy, 'unvalued_kg', v.unvalued_kg)),
        'value_retention', circa_metric(circa_rate(v.known_value, v.known_new_value), v.known_kg,
            v.known_kg,
            jsonb_build_object('currency', t.currency, 'recovered_value', v.known_value,
                               'value_as_new', v.known_new_value)),
        'avoided_virgin_kg', circa_metric(fl.secondary, fl.secondary, NULL::float8,
            jsonb_build_object('value', fl.secondary_value, 'currency', t.currency)),
        'unbalanced_kg', circa_metric(s.t_in - s.t_out - losses, NULL::float8, NULL::float8,
            jsonb_build_object('inputs_kg', s.t_in, 'outputs_kg', s.t_out,
                               'declared_loss_kg', losses)),
        'late_events', circa_metric(s.late, NULL::float8, NULL::float8,
            jsonb_build_object('events', s.events)),
        'unknown_fate_kg', circa_metric(u.kg, u.kg, u.shipped,
            jsonb_build_object('shipped_kg', u.shipped, 'by_destination', u.by_destination)));
    RETURN jsonb_build_object(
        'scope', jsonb_build_object('tenant', p_tenant, 'party', p_party, 'site', p_site,
                                    'material', p_material, 'product', p_product),
        'period', jsonb_build_object('from', d.from_day, 'to', d.to_day, 'tz', d.tz),
        'block', t.head_hash,
        'metrics', m || circa_item_metrics(p_tenant, d.from_ts, d.to_ts, p_product));
END $$;

-- GET /v1/flows: Sankey nodes and links (kg) of [from, to). Between two sites a link carries
-- the larger of what the sender shipped and what the receiver received or collected from it
-- (both are shown), so a documented transfer is drawn once. Sources: "source:waste_generated",
-- "source:produced", "market" (returned items); sinks: "op:<R/D code>" for final treatment and
-- pretreatment, "strategy:<type>" for re-use, "market" (put on market).
CREATE OR REPLACE FUNCTION circa_flows(p_tenant text, p_from text, p_to text, p_party text,
                                       p_site text, p_material text, p_product text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    d record;
    links jsonb;
    nodes jsonb;
BEGIN
    d := circa_days(p_tenant, p_from, p_to);
    WITH x AS (
        SELECT * FROM circa_rollups_in(p_tenant, d.from_day, d.to_day, p_party, p_site,
                                       p_material, p_product) WHERE mp_ok
    ), ins AS (   -- is a site in the party/site scope (sites never in the catalogue: no)
        SELECT code FROM site WHERE tenant_id = p_tenant
           AND (p_site IS NULL OR code = p_site) AND (p_party IS NULL OR party = p_party)
    ), transfer AS (
        SELECT src, dst, sum(shipped) AS shipped, sum(received) AS received
          FROM (SELECT site AS src, counterpart AS dst, kg AS shipped, 0 AS received FROM x
                 WHERE type = 'shipped' AND counterpart <> ''
                UNION ALL
                SELECT CASE WHEN counterpart = '' THEN 'unknown' ELSE counterpart END, site, 0, kg
                  FROM x WHERE type IN ('received', 'collected')) t
         WHERE (p_site IS NULL AND p_party IS NULL) OR src IN (SELECT code FROM ins)
            OR dst IN (SELECT code FROM ins)
         GROUP BY src, dst
    ), other AS (
        SELECT CASE WHEN type = 'waste_generated' THEN 'source:waste_generated'
                    WHEN type = 'produced' THEN 'source:produced'
                    WHEN type = 'returned' THEN 'market' ELSE site END AS src,
               CASE WHEN type IN ('waste_generated', 'produced', 'returned') THEN site
                    WHEN type = 'put_on_market' THEN 'market'
                    WHEN type IN ('recycled', 'energy_recovered', 'disposed') THEN 'op:' || operation
                    ELSE 'strategy:' || type END AS dst,
               type, sum(kg) AS kg
          FROM x
         WHERE site_ok AND type IN ('waste_generated', 'produced', 'returned', 'put_on_market',
                                    'recycled', 'energy_recovered', 'disposed', 'reused',
                                    'repaired', 'refurbished', 'remanufactured', 'repurposed')
         GROUP BY 1, 2, 3
    ), l AS (
        SELECT src, dst, 'transfer' AS type, greatest(shipped, received) AS kg,
               jsonb_build_object('shipped_kg', shipped, 'received_kg', received) AS extra
          FROM transfer
        UNION ALL
        SELECT src, dst, type, kg, '{}'::jsonb FROM other
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('source', src, 'target', dst, 'type', type,
                                                 'kg', kg) || extra ORDER BY src, dst, type), '[]'),
           (SELECT coalesce(jsonb_agg(n ORDER BY n->>'id'), '[]') FROM (
                SELECT CASE WHEN id LIKE 'op:%' THEN jsonb_build_object('id', id, 'kind', 'treatment',
                                'operation', o.code, 'category', o.category)
                            WHEN id LIKE 'source:%' THEN jsonb_build_object('id', id, 'kind', 'source')
                            WHEN id LIKE 'strategy:%' THEN jsonb_build_object('id', id, 'kind', 'strategy')
                            WHEN id = 'market' THEN jsonb_build_object('id', id, 'kind', 'market')
                            WHEN s.code IS NOT NULL THEN jsonb_build_object('id', id, 'kind', 'site',
                                'party', s.party, 'site_kind', s.kind, 'name', s.name)
                            ELSE jsonb_build_object('id', id, 'kind', 'external') END AS n
                  FROM (SELECT src AS id FROM l UNION SELECT dst FROM l) ids
                  LEFT JOIN site s ON s.tenant_id = p_tenant AND s.code = ids.id
                  LEFT JOIN rd_operation o ON 'op:' || o.code = ids.id) nn)
      INTO links, nodes
      FROM l;
    RETURN jsonb_build_object(
        'scope', jsonb_build_object('tenant', p_tenant, 'party', p_party, 'site', p_site,
                                    'material', p_material, 'product', p_product),
        'period', jsonb_build_object('from', d.from_day, 'to', d.to_day, 'tz', d.tz),
        'block', (SELECT head_hash FROM tenant WHERE id = p_tenant),
        'nodes', nodes, 'links', links);
END $$;

-- GET /v1/items/{id}/lifecycles: the item's state and its lives; NULL when unknown.
CREATE OR REPLACE FUNCTION circa_item_lifecycles(p_tenant text, p_item text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('item', i.id, 'product', i.product, 'state', i.state,
               'lives', i.lives, 'fate', i.fate, 'first_seen', i.first_seen,
               'lifecycles', coalesce((
                   SELECT jsonb_agg(jsonb_build_object('life', l.life, 'product', l.product,
                              'started', l.started, 'start_type', l.start_type,
                              'start_event', l.start_event, 'ended', l.ended,
                              'end_type', l.end_type, 'end_event', l.end_event,
                              'use_days', extract(epoch FROM l.ended - l.started) / 86400,
                              'fate', CASE WHEN l.end_type IN ('recycled', 'energy_recovered',
                                                               'disposed') THEN l.end_type END)
                                    ORDER BY l.life)
                     FROM lifecycle l WHERE l.tenant_id = p_tenant AND l.item = i.id), '[]'))
      FROM item i WHERE i.tenant_id = p_tenant AND i.id = p_item
$$;

-- GET /v1/lots/{id}/trace: every lot reached from p_lot through transformations, back (its
-- inputs) or forward (its outputs), at most 64 deep, never through a lot already on the path.
-- A path's share is the product of the link shares along it: the fraction of the downstream
-- lot's mass that came from the upstream lot. A lot reached along several paths sums them.
-- Back, the source lots (no inputs of their own) name their events. NULL when the lot is unknown.
CREATE OR REPLACE FUNCTION circa_lot_trace(p_tenant text, p_lot text, p_dir text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE walk(lot, depth, share, path, events) AS (
        SELECT p_lot, 0, 1::float8, ARRAY[p_lot], ARRAY[]::text[]
        UNION ALL
        SELECT n.lot, w.depth + 1, w.share * n.share, w.path || n.lot, w.events || n.event_id
          FROM walk w
          CROSS JOIN LATERAL (
              SELECT l.input_lot AS lot, l.share, l.event_id FROM lot_link l
               WHERE p_dir = 'back' AND l.tenant_id = p_tenant AND l.output_lot = w.lot
              UNION ALL
              SELECT l.output_lot, l.share, l.event_id FROM lot_link l
               WHERE p_dir = 'forward' AND l.tenant_id = p_tenant AND l.input_lot = w.lot) n
         WHERE w.depth < 64 AND NOT n.lot = ANY (w.path)
           AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                            AND c.corrected = n.event_id)
    ), reached AS (
        SELECT w.lot, min(w.depth) AS depth, sum(w.share) AS share,
               jsonb_agg(jsonb_build_object('path', w.path, 'events', w.events, 'depth', w.depth,
                                            'share', w.share) ORDER BY w.depth, w.path) AS paths
          FROM walk w WHERE w.depth > 0 GROUP BY w.lot
    ), leaf AS (   -- reached lots (or the lot itself) with nothing further upstream
        SELECT lot FROM (SELECT lot FROM reached UNION SELECT p_lot) x
         WHERE p_dir = 'back' AND NOT EXISTS (SELECT 1 FROM lot_link l WHERE l.tenant_id = p_tenant
                                              AND l.output_lot = x.lot)
    )
    SELECT jsonb_build_object(
        'lot', p_lot, 'direction', p_dir,
        'material', (SELECT material FROM lot WHERE tenant_id = p_tenant AND id = p_lot),
        'truncated', EXISTS (SELECT 1 FROM walk WHERE depth = 64),
        'lots', coalesce((SELECT jsonb_agg(jsonb_build_object('lot', r.lot, 'depth', r.depth,
                              'share', r.share, 'material', lt.material, 'site', lt.site,
                              'paths', r.paths) ORDER BY r.depth, r.lot)
                            FROM reached r
                            LEFT JOIN lot lt ON lt.tenant_id = p_tenant AND lt.id = r.lot), '[]'),
        'sources', CASE WHEN p_dir = 'back' THEN coalesce((
            SELECT jsonb_agg(jsonb_build_object('lot', f.lot, 'events', coalesce((
                       SELECT jsonb_agg(jsonb_build_object('id', e.id, 'type', e.type,
                                  'time', e.event_time, 'site', e.site, 'material', e.material,
                                  'ewc', nullif(e.ewc, ''), 'quantity_kg', e.quantity_kg)
                                        ORDER BY e.event_time, e.seq)
                         FROM event e
                        WHERE e.tenant_id = p_tenant AND e.lot = f.lot
                          AND e.type NOT IN ('corrected', 'measured', 'observed')
                          AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                                           AND c.corrected = e.id)), '[]')) ORDER BY f.lot)
              FROM leaf f), '[]') END)
     WHERE EXISTS (SELECT 1 FROM lot WHERE tenant_id = p_tenant AND id = p_lot)
        OR EXISTS (SELECT 1 FROM lot_link WHERE tenant_id = p_tenant
                    AND (input_lot = p_lot OR output_lot = p_lot))
$$;

CREATE INDEX IF NOT EXISTS item_product ON item (tenant_id, product) WHERE product IS NOT NULL;

-- GET /v1/products/{id}/mci: the Ellen MacArthur Foundation Material Circularity Indicator
-- (METRICS.md) with every input and a note for every default taken. NULL when the product is
-- unknown; CA310 when it has no mass. from/to NULL: all time.
CREATE OR REPLACE FUNCTION circa_product_mci(p_tenant text, p_product text, p_from text,
                                             p_to text, p_u double precision,
                                             p_u_av double precision) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    p product%ROWTYPE;
    b record; o record; lv record;
    tz text; v_from timestamptz; v_to timestamptz;
    notes text[] := '{}';
    mm float8; fr float8 := 0; fu float8 := 0; fs float8 := 0; ec float8 := 1; ef float8 := 1;
    cr float8 := 0; cu float8 := 0; ce float8 := 0; cc float8 := 0;
    vv float8; w0 float8; wc float8; wf float8; ww float8; lfi float8;
    v_l float8; v_lav float8; v_u float8; v_uav float8; v_x float8; v_fx float8;
BEGIN
    SELECT * INTO p FROM product WHERE tenant_id = p_tenant AND code = p_product;
    IF NOT FOUND THEN RETURN NULL; END IF;
    SELECT time_zone INTO tz FROM tenant WHERE id = p_tenant;
    v_from := coalesce(circa_bound(tz, p_from), '-infinity');
    v_to := coalesce(circa_bound(tz, p_to), 'infinity');
    IF v_to <= v_from THEN
        RAISE EXCEPTION 'to must be after from' USING ERRCODE = '22023';
    END IF;

    -- M and the feedstock fractions from the bill of materials.
    mm := coalesce(p.mass_kg, (SELECT sum((bl->>'mass_kg')::float8) FROM jsonb_array_elements(
                                   CASE WHEN jsonb_typeof(p.doc->'bom') = 'array'
                                        THEN p.doc->'bom' ELSE '[]' END) bl
                                HAVING count(*) = count(bl->'mass_kg')));
    IF mm IS NULL OR mm <= 0 THEN
        RAISE EXCEPTION 'product % has no mass_kg and its bill of materials gives no total mass',
            p_product USING ERRCODE = 'CA310';
    END IF;
    SELECT * INTO b FROM circa_bom(p_tenant) c WHERE c.product = p_product;
    IF b.product IS NULL THEN
        notes := notes || 'no bill of materials: F_R = F_U = F_S = 0 and E_C = E_F = 1'::text;
    ELSE
        fr := b.recycled; fu := b.reused; fs := b.renewable; ec := b.e_c; ef := b.e_f;
        IF NOT b.e_c_known THEN
            notes := notes || 'E_C = 1 for materials without recycling_efficiency_eol'::text;
        END IF;
        IF NOT b.e_f_known THEN
            notes := notes || 'E_F = 1 for materials without recycling_efficiency_feedstock'::text;
        END IF;
    END IF;

    -- End-of-use fractions from the observed fates of the product's items and of events naming it.
    SELECT coalesce(sum(k) FILTER (WHERE type = 'recycled'), 0) AS rec,
           coalesce(sum(k) FILTER (WHERE type IN ('reused', 'refurbished', 'remanufactured')), 0) AS reu,
           coalesce(sum(k) FILTER (WHERE type = 'energy_recovered'), 0) AS er,
           coalesce(sum(k) FILTER (WHERE type = 'disposed'), 0) AS dis, count(*) AS n
      INTO o
      FROM (SELECT e.type, coalesce(nullif(e.quantity_kg, 0), mm) AS k
              FROM event e
             WHERE e.tenant_id = p_tenant
               AND (e.product = p_product
                    OR e.item IN (SELECT i.id FROM item i WHERE i.tenant_id = p_tenant
                                   AND i.product = p_product))
               AND e.type IN ('recycled', 'reused', 'refurbished', 'remanufactured',
                              'energy_recovered', 'disposed')
               AND e.event_time >= v_from AND e.event_time < v_to
               AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                                AND c.corrected = e.id)) f;
    IF o.rec + o.reu + o.er + o.dis > 0 THEN
        cr := o.rec / (o.rec + o.reu + o.er + o.dis);
        cu := o.reu / (o.rec + o.reu + o.er + o.dis);
        ce := o.er / (o.rec + o.reu + o.er + o.dis);
    ELSE
        notes := notes || 'no end-of-use fate observed: C_R = C_U = C_E = 0'::text;
    END IF;
    notes := notes || 'C_C = 0: composting (R3) is not told apart from other recycling'::text;

    -- Utility: use durations and lives per item.
    SELECT avg(extract(epoch FROM lc.ended - lc.started) / 86400) AS days, count(*) AS n
      INTO lv
      FROM lifecycle lc
     WHERE lc.tenant_id = p_tenant AND lc.product = p_product
       AND lc.ended >= v_from AND lc.ended < v_to;
    v_lav := p.industry_lifetime_days;
    v_l := lv.days;
    IF v_l IS NULL THEN
        v_l := coalesce(p.lifetime_days, v_lav);
        notes := notes || CASE WHEN p.lifetime_days IS NOT NULL
                                THEN 'no life ended in the period: L is the product''s lifetime_days'
                                ELSE 'no life ended in the period and no lifetime_days: L = L_av' END;
    END IF;
    IF v_lav IS NULL OR v_l IS NULL THEN
        notes := notes || 'no industry_lifetime_days: L / L_av = 1'::text;
        v_l := 1; v_lav := 1;
    END IF;
    v_u := p_u;
    IF v_u IS NULL THEN
        SELECT avg(n) INTO v_u
          FROM (SELECT l2.item, count(*) AS n FROM lifecycle l2
                 WHERE l2.tenant_id = p_tenant AND l2.product = p_product AND l2.started < v_to
                   AND l2.item IN (SELECT l3.item FROM lifecycle l3 WHERE l3.tenant_id = p_tenant
                                     AND l3.product = p_product AND l3.started >= v_from
                                     AND l3.started < v_to)
                 GROUP BY l2.item) z;
        IF v_u IS NULL THEN
            v_u := 1;
            notes := notes || 'no item put in use in the period: U = 1'::text;
        END IF;
    END IF;
    v_uav := coalesce(p_u_av, 1);
    IF p_u_av IS NULL THEN
        notes := notes || 'U_av = 1 (one use per item is the reference) unless u_av is given'::text;
    END IF;

    vv := mm * (1 - fr - fu - fs);
    w0 := mm * (1 - cr - cu - cc - ce);
    wc := mm * (1 - ec) * cr;
    wf := mm * (1 - ef) * fr / ef;
    ww := w0 + (wf + wc) / 2;
    lfi := (vv + ww) / (2 * mm + (wf - wc) / 2);
    v_x := (v_l / v_lav) * (v_u / v_uav);
    v_fx := 0.9 / v_x;
    RETURN jsonb_build_object(
        'product', p_product,
        'period', jsonb_build_object('from', p_from, 'to', p_to, 'tz', tz),
        'block', (SELECT head_hash FROM tenant WHERE id = p_tenant),
        'mci', greatest(0, 1 - lfi * v_fx),
        'inputs', jsonb_build_object('M', mm, 'F_R', fr, 'F_U', fu, 'F_S', fs, 'V', vv,
            'C_R', cr, 'C_U', cu, 'C_C', cc, 'C_E', ce, 'W_0', w0, 'E_C', ec, 'E_F', ef,
            'W_C', wc, 'W_F', wf, 'W', ww, 'LFI', lfi, 'L', v_l, 'L_av', v_lav, 'U', v_u, 'U_av', v_uav,
            'X', v_x, 'F(X)', v_fx, 'MCI', greatest(0, 1 - lfi * v_fx)),
        'observed', jsonb_build_object('recycled_kg', o.rec, 'reused_kg', o.reu,
            'energy_recovered_kg', o.er, 'disposed_kg', o.dis, 'fate_events', o.n,
            'lives_ended', lv.n, 'mean_use_days', lv.days),
        'notes', to_jsonb(notes));
END $$;

-- Tenant settings (GET/PUT /v1/tenant).
CREATE OR REPLACE FUNCTION circa_tenant_get(p_tenant text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', id, 'name', name, 'time_zone', time_zone,
                              'currency', currency, 'mass_balance_tolerance', mass_balance_tolerance,
                              'mode', mode)
      FROM tenant WHERE id = p_tenant
$$;

-- Rebuilds a tenant's daily roll-ups from its events (after a time-zone change moves the day
-- boundaries). Holds the tenant row's lock, so no group commits meanwhile.
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
END $$;

-- Applies the members present in p_doc (types checked by circad). An unknown time zone raises
-- CA301 with "field<TAB>message". A new time zone rebuilds the roll-ups in the same transaction.
CREATE OR REPLACE FUNCTION circa_tenant_put(p_tenant text, p_doc jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_tz text;
BEGIN
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant FOR UPDATE;
    IF p_doc ? 'time_zone' AND NOT EXISTS (SELECT 1 FROM pg_timezone_names
                                           WHERE name = p_doc->>'time_zone') THEN
        RAISE EXCEPTION USING ERRCODE = 'CA301', MESSAGE = 'time_zone' || E'\t' ||
            format('unknown time zone %L; use an IANA name such as Europe/Berlin', p_doc->>'time_zone');
    END IF;
    UPDATE tenant SET name = coalesce(p_doc->>'name', name),
                      time_zone = coalesce(p_doc->>'time_zone', time_zone),
                      currency = coalesce(p_doc->>'currency', currency),
                      mass_balance_tolerance = coalesce((p_doc->>'mass_balance_tolerance')::float8,
                                                        mass_balance_tolerance),
                      mode = coalesce(p_doc->>'mode', mode)
     WHERE id = p_tenant;
    IF p_doc->>'time_zone' IS DISTINCT FROM v_tz AND p_doc ? 'time_zone' THEN
        PERFORM circa_rollup_rebuild(p_tenant);
    END IF;
    RETURN circa_tenant_get(p_tenant);
END $$;
