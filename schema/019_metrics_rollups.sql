-- /v1/metrics within a few milliseconds at any ledger size (docs/PERFORMANCE.md, Metrics):
--   item_day   the item metrics' roll-up, kept in the ingest transaction (circa_derive_group,
--              groups with items: bit 4 of p_kinds), so circa_item_metrics reads roll-up rows,
--              not lifecycle and event rows with per-item subqueries.
--   circa_metrics reads circa_rollups_in once (an array shared by every part), not four times.
--   The derive steps read the group's events by (tenant_id, seq) row comparisons, which only
--   event_seq can serve (the planner took the event-time index for seq BETWEEN).
--
-- item_day rows, per tenant-local day (d2, d3: other days; 'infinity'/'-infinity': none), product
-- ('' when none) and v, each with a count n (and kg, vsum):
--   L  a life in item order (lives sorted by start time, then life number): day = its start,
--      d2 = the start of the item's next life, v = its rank. Over [from, to) the item has a life
--      started in the period and v lives started before `to` exactly when day is in the period
--      and d2 >= to, so lives_per_item is a sum.
--   E  a life ended on day: v = its use days (ended − started, exact), vsum = v × n. Median and
--      p90 are percentile_cont over the histogram, exactly as over the lives.
--   M  a life started by put_on_market: day = its start, d2 = the item's previous
--      put_on_market start, d3 = the first end by returned/collected of a life of the item
--      started at or after it. The item was put on market in the period (first time in it:
--      this life) when day is in the period and d2 < from; it came back when d3 < to.
--   recycled / energy_recovered / disposed   retiring events naming an item (not corrected):
--      day = event day, product = the event's, else the item's; n events, kg.
-- An item's L/E/M rows are taken back and added again around the group's item step, so late
-- events (lives out of time order) move the ranks correctly.

CREATE TABLE item_day (
    tenant_id text NOT NULL,
    kind      text NOT NULL,
    day       date NOT NULL,
    d2        date NOT NULL,
    d3        date NOT NULL,
    product   text NOT NULL,
    v         double precision NOT NULL,
    n         bigint NOT NULL,
    kg        double precision NOT NULL,
    vsum      double precision NOT NULL,
    PRIMARY KEY (tenant_id, kind, day, d2, d3, product, v)
);

-- L, E and M rows of the given items from their lifecycle rows, signed (+1 add, -1 take back).
CREATE FUNCTION circa_item_day_add(p_tenant text, p_items text[], p_sign integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_tz text;
BEGIN
    IF p_items IS NULL OR cardinality(p_items) = 0 THEN
        RETURN;
    END IF;
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    INSERT INTO item_day AS r (tenant_id, kind, day, d2, d3, product, v, n, kg, vsum)
    SELECT p_tenant, x.kind, x.day, x.d2, x.d3, x.product, x.v, p_sign * count(*), 0,
           p_sign * sum(x.v)
      FROM (
        SELECT 'L' AS kind, (l.started AT TIME ZONE v_tz)::date AS day,
               coalesce((lead(l.started) OVER w AT TIME ZONE v_tz)::date, 'infinity'::date) AS d2,
               'infinity'::date AS d3, coalesce(l.product, '') AS product,
               (row_number() OVER w)::float8 AS v
          FROM lifecycle l
         WHERE l.tenant_id = p_tenant AND l.item = ANY (p_items)
        WINDOW w AS (PARTITION BY l.item ORDER BY l.started, l.life)
        UNION ALL
        SELECT 'E', (l.ended AT TIME ZONE v_tz)::date, 'infinity'::date, 'infinity'::date,
               coalesce(l.product, ''), extract(epoch FROM l.ended - l.started) / 86400
          FROM lifecycle l
         WHERE l.tenant_id = p_tenant AND l.item = ANY (p_items) AND l.ended IS NOT NULL
        UNION ALL
        SELECT 'M', (m.started AT TIME ZONE v_tz)::date,
               coalesce((lag(m.started) OVER (PARTITION BY m.item ORDER BY m.started, m.life)
                         AT TIME ZONE v_tz)::date, '-infinity'::date),
               coalesce((SELECT (min(k.ended) AT TIME ZONE v_tz)::date FROM lifecycle k
                          WHERE k.tenant_id = p_tenant AND k.item = m.item
                            AND k.started >= m.started
                            AND k.end_type IN ('returned', 'collected')), 'infinity'::date),
               coalesce(m.product, ''), 0::float8
          FROM lifecycle m
         WHERE m.tenant_id = p_tenant AND m.item = ANY (p_items)
           AND m.start_type = 'put_on_market') x
     GROUP BY x.kind, x.day, x.d2, x.d3, x.product, x.v
    ON CONFLICT (tenant_id, kind, day, d2, d3, product, v)
    DO UPDATE SET n = r.n + EXCLUDED.n, vsum = r.vsum + EXCLUDED.vsum;
END $$;

-- Retiring events (recycled, energy_recovered, disposed) naming an item among p_ids, signed.
CREATE FUNCTION circa_item_fate_add(p_tenant text, p_ids text[], p_sign integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_ids IS NULL OR cardinality(p_ids) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO item_day AS r (tenant_id, kind, day, d2, d3, product, v, n, kg, vsum)
    SELECT p_tenant, e.type, (e.event_time AT TIME ZONE t.time_zone)::date, 'infinity'::date,
           'infinity'::date, coalesce(e.product, i.product, ''), 0, p_sign * count(*),
           p_sign * coalesce(sum(e.quantity_kg), 0), 0
      FROM event e
      JOIN tenant t ON t.id = p_tenant
      LEFT JOIN item i ON i.tenant_id = p_tenant AND i.id = e.item
     WHERE e.tenant_id = p_tenant AND e.id = ANY (p_ids) AND e.item IS NOT NULL
       AND e.type IN ('recycled', 'energy_recovered', 'disposed')
     GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (tenant_id, kind, day, d2, d3, product, v)
    DO UPDATE SET n = r.n + EXCLUDED.n, kg = r.kg + EXCLUDED.kg;
END $$;

-- The roll-up step with the group read through event_seq.
CREATE OR REPLACE FUNCTION circa_rollup_add(p_tenant text, p_first bigint, p_last bigint,
                                            p_only_ids text[], p_sign double precision) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
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
      FROM event e
      JOIN tenant t ON t.id = e.tenant_id
      LEFT JOIN ewc w ON w.code = e.ewc
     WHERE e.tenant_id = p_tenant
       AND (p_only_ids IS NULL AND (e.tenant_id, e.seq) >= (p_tenant, p_first)
                               AND (e.tenant_id, e.seq) <= (p_tenant, p_last)
            OR e.id = ANY (p_only_ids))
       AND e.type NOT IN ('corrected', 'measured', 'observed', 'transformed')
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
    ON CONFLICT (tenant_id, day, site, counterpart, material, product, type, operation, ewc)
    DO UPDATE SET kg = r.kg + EXCLUDED.kg, events = r.events + EXCLUDED.events,
                  value_declared = r.value_declared + EXCLUDED.value_declared,
                  kg_no_value = r.kg_no_value + EXCLUDED.kg_no_value,
                  late = r.late + EXCLUDED.late;
END $$;

CREATE OR REPLACE FUNCTION circa_loss_add(p_tenant text, p_first bigint, p_last bigint,
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
       AND (p_only_ids IS NULL AND (e.tenant_id, e.seq) >= (p_tenant, p_first)
                               AND (e.tenant_id, e.seq) <= (p_tenant, p_last)
            OR e.id = ANY (p_only_ids))
     GROUP BY 1, 2, 3
    ON CONFLICT (tenant_id, day, site) DO UPDATE SET kg = d.kg + EXCLUDED.kg;
END $$;

-- The derive step of 015/018 with item_day kept and the group read through event_seq.
CREATE OR REPLACE FUNCTION circa_derive_group(p_tenant text, p_first bigint, p_last bigint, p_kinds integer)
RETURNS void LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    e record;
    v_lenient boolean := false;
    v_items text[];
    v_retiring text[];
    v_corrects text[];
    v_by text[];
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
          FROM event
         WHERE (tenant_id, seq) >= (p_tenant, p_first) AND (tenant_id, seq) <= (p_tenant, p_last)
           AND lot IS NOT NULL
         ORDER BY lot, seq
        ON CONFLICT DO NOTHING;
    END IF;
    IF p_kinds & 8 <> 0 THEN
        FOR e IN SELECT id, corrects, convert_from(canon, 'UTF8')::jsonb->'replacement'->>'id' AS repl
                   FROM event
                  WHERE (tenant_id, seq) >= (p_tenant, p_first)
                    AND (tenant_id, seq) <= (p_tenant, p_last)
                    AND type = 'corrected' ORDER BY seq LOOP
            PERFORM circa_apply_correction(p_tenant, v_lenient, e.id, e.corrects, e.repl);
            v_corrects := v_corrects || e.corrects;
            v_by := v_by || e.id;
        END LOOP;
        -- Corrected retiring item events leave the fates (lenient violations corrected nothing).
        PERFORM circa_item_fate_add(p_tenant, ARRAY(
            SELECT c.corrected FROM correction c
             WHERE c.tenant_id = p_tenant AND c.corrected = ANY (v_corrects)
               AND c.by_event = ANY (v_by)), -1);
    END IF;
    PERFORM circa_interim_derive(p_tenant, p_first, p_last, p_kinds);
    IF p_kinds & 4 <> 0 THEN
        SELECT array_agg(DISTINCT item),
               array_agg(id) FILTER (WHERE type IN ('recycled', 'energy_recovered', 'disposed'))
          INTO v_items, v_retiring
          FROM event
         WHERE (tenant_id, seq) >= (p_tenant, p_first) AND (tenant_id, seq) <= (p_tenant, p_last)
           AND item IS NOT NULL AND type <> 'corrected';
        PERFORM circa_item_day_add(p_tenant, v_items, -1);
        FOR e IN SELECT id, type, item, product, event_time
                   FROM event
                  WHERE (tenant_id, seq) >= (p_tenant, p_first)
                    AND (tenant_id, seq) <= (p_tenant, p_last)
                    AND item IS NOT NULL AND type <> 'corrected' ORDER BY seq LOOP
            PERFORM circa_apply_item(p_tenant, v_lenient, e.id, e.type, e.item, e.product,
                                     e.event_time);
        END LOOP;
        PERFORM circa_item_day_add(p_tenant, v_items, 1);
        PERFORM circa_item_fate_add(p_tenant, v_retiring, 1);
    END IF;
END $$;

-- Item metrics over [from, to) (whole local days, circa_days) from item_day: the same answer
-- as 007's circa_item_metrics (docs/METRICS-API.md), a sum over the period's rows.
CREATE OR REPLACE FUNCTION circa_item_metrics(p_tenant text, p_from timestamptz,
                                              p_to timestamptz, p_product text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_tz text;
    fd date;
    td date;
    v_items bigint; v_lives float8; v_dist jsonb;
    v_pct float8[];
    v_ended bigint; v_median float8; v_p90 float8; v_mean float8;
    v_market bigint; v_back bigint;
    v_fate jsonb; v_fate_n bigint; v_fate_kg float8;
BEGIN
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    fd := (p_from AT TIME ZONE v_tz)::date;
    td := (p_to AT TIME ZONE v_tz)::date;

    SELECT coalesce(sum(c), 0), coalesce(sum(c * k), 0),
           coalesce(jsonb_object_agg(k::bigint::text, c) FILTER (WHERE c <> 0), '{}')
      INTO v_items, v_lives, v_dist
      FROM (SELECT v AS k, sum(n) AS c FROM item_day
             WHERE tenant_id = p_tenant AND kind = 'L' AND day >= fd AND day < td AND d2 >= td
               AND (p_product IS NULL OR product = p_product)
             GROUP BY v HAVING sum(n) <> 0) x;

    -- Use days: percentile_cont over the histogram (value v, count c) expanded, as over the
    -- lives (most values are distinct: fractional days).
    WITH h AS (
        SELECT v, sum(n)::bigint AS c, sum(vsum) AS s FROM item_day
         WHERE tenant_id = p_tenant AND kind = 'E' AND day >= fd AND day < td
           AND (p_product IS NULL OR product = p_product)
         GROUP BY v HAVING sum(n) > 0
    )
    SELECT (SELECT coalesce(sum(c), 0) FROM h), (SELECT sum(s) / nullif(sum(c), 0) FROM h),
           percentile_cont(ARRAY[0.5, 0.9]::float8[]) WITHIN GROUP (ORDER BY h.v)
      INTO v_ended, v_mean, v_pct
      FROM h, generate_series(1, h.c);
    v_median := v_pct[1];
    v_p90 := v_pct[2];

    SELECT coalesce(sum(n), 0), coalesce(sum(n) FILTER (WHERE d3 < td), 0)
      INTO v_market, v_back
      FROM item_day
     WHERE tenant_id = p_tenant AND kind = 'M' AND day >= fd AND day < td AND d2 < fd
       AND (p_product IS NULL OR product = p_product);

    SELECT sum(r.n), sum(r.kg),
           jsonb_build_object('n', jsonb_object_agg(t.f, coalesce(r.n, 0)),
                              'kg', jsonb_object_agg(t.f, coalesce(r.kg, 0)))
      INTO v_fate_n, v_fate_kg, v_fate
      FROM unnest(ARRAY['recycled', 'energy_recovered', 'disposed']) t(f)
      LEFT JOIN (SELECT kind, sum(n) AS n, sum(kg) AS kg FROM item_day
                  WHERE tenant_id = p_tenant
                    AND kind IN ('recycled', 'energy_recovered', 'disposed')
                    AND day >= fd AND day < td
                    AND (p_product IS NULL OR product = p_product)
                  GROUP BY kind) r ON r.kind = t.f;
    v_fate_n := coalesce(v_fate_n, 0);
    v_fate_kg := coalesce(v_fate_kg, 0);

    RETURN jsonb_build_object(
        'lives_per_item', circa_metric(circa_rate(v_lives, v_items), NULL, NULL,
            jsonb_build_object('items', v_items, 'lives', v_lives::bigint, 'distribution', v_dist)),
        'use_days', circa_metric(v_median, NULL, NULL,
            jsonb_build_object('lives_ended', v_ended, 'median', v_median, 'p90', v_p90,
                               'mean', v_mean)),
        'return_rate', circa_metric(circa_rate(v_back, v_market), NULL, NULL,
            jsonb_build_object('items_put_on_market', v_market, 'items_returned', v_back)),
        'fate', circa_metric(
            CASE WHEN v_fate_n > 0 THEN
                (SELECT jsonb_object_agg(k, (x::text)::float8 / v_fate_n)
                   FROM jsonb_each(v_fate->'n') j(k, x)) END,
            v_fate_kg, NULL,
            jsonb_build_object('items_retired', v_fate_n, 'items', v_fate->'n',
                               'kg', v_fate->'kg')));
END $$;

-- One row of circa_rollups_in, so circa_metrics reads the period's roll-ups once and hands the
-- same rows to each part (the *_of functions: 007's bodies over unnest(p_rows)).
CREATE TYPE circa_rollup_row AS (
    site text, counterpart text, material text, product text, type text, operation text,
    category text, ewc text, hazardous boolean, kg double precision, events bigint,
    value_declared double precision, kg_no_value double precision, late bigint,
    site_ok boolean, mp_ok boolean);

CREATE FUNCTION circa_sums_of(p_tenant text, p_rows circa_rollup_row[])
RETURNS TABLE (wg double precision, wg_haz double precision, rec double precision,
               er double precision, inc double precision, lf double precision,
               od double precision, pre double precision, reused double precision,
               repaired double precision, refurbished double precision,
               remanufactured double precision, repurposed double precision,
               returned double precision, consumed double precision, t_in double precision,
               t_out double precision, late bigint, events bigint, by_ewc jsonb)
LANGUAGE sql STABLE AS $$
    WITH r AS (
        SELECT * FROM unnest(p_rows) WHERE site_ok AND mp_ok
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

CREATE FUNCTION circa_inflow_of(p_tenant text, p_rows circa_rollup_row[],
                                        OUT kg double precision, OUT secondary double precision,
                                        OUT renewable double precision,
                                        OUT secondary_value double precision,
                                        OUT without_bom_kg double precision)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(r.kg), 0), coalesce(sum(r.kg * b.secondary), 0),
           coalesce(sum(r.kg * coalesce(b.renewable, CASE WHEN mt.renewable THEN 1 ELSE 0 END)), 0),
           coalesce(sum(r.kg * b.secondary_value_per_kg), 0),
           coalesce(sum(r.kg) FILTER (WHERE b.product IS NULL), 0)
      FROM unnest(p_rows) r
      LEFT JOIN circa_bom(p_tenant) b ON b.product = r.product
      LEFT JOIN material mt ON mt.tenant_id = p_tenant AND mt.code = r.material
     WHERE r.site_ok AND r.mp_ok AND r.type = 'produced'
$$;

CREATE FUNCTION circa_value_of(p_tenant text, p_rows circa_rollup_row[],
                                       OUT by_strategy jsonb, OUT kg_by_strategy jsonb,
                                       OUT total double precision, OUT kg double precision,
                                       OUT unvalued_kg double precision,
                                       OUT known_value double precision,
                                       OUT known_new_value double precision,
                                       OUT known_kg double precision)
LANGUAGE sql STABLE AS $$
    WITH x AS (
        SELECT CASE WHEN r.type = 'reused' THEN 'reuse' WHEN r.type = 'repaired' THEN 'repair'
                    WHEN r.type = 'refurbished' THEN 'refurbish'
                    WHEN r.type = 'remanufactured' THEN 'remanufacture'
                    WHEN r.type = 'repurposed' THEN 'repurpose'
                    WHEN r.type = 'recycled' THEN 'recycling'
                    WHEN r.type = 'energy_recovered' THEN 'energy_recovery' END AS strategy,
               r.kg, r.value_declared + r.kg_no_value * coalesce(mt.value_per_kg, 0) AS val,
               CASE WHEN mt.value_per_kg IS NULL THEN r.kg_no_value ELSE 0 END AS unvalued,
               mt.value_per_kg AS vpk
          FROM unnest(p_rows) r
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

CREATE FUNCTION circa_unknown_fate_of(p_tenant text, p_rows circa_rollup_row[], OUT kg double precision,
                                              OUT shipped double precision, OUT by_destination jsonb)
LANGUAGE sql STABLE AS $$
    WITH x AS (
        SELECT * FROM unnest(p_rows)
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
    rows circa_rollup_row[];
BEGIN
    SELECT * INTO t FROM tenant WHERE id = p_tenant;
    d := circa_days(p_tenant, p_from, p_to);
    -- The period's roll-ups, read once and shared by every part.
    rows := ARRAY(SELECT ROW(r.*)::circa_rollup_row
                    FROM circa_rollups_in(p_tenant, d.from_day, d.to_day, p_party, p_site,
                                          p_material, p_product) r);
    SELECT * INTO s FROM circa_sums_of(p_tenant, rows);
    fl := circa_inflow_of(p_tenant, rows);
    v := circa_value_of(p_tenant, rows);
    u := circa_unknown_fate_of(p_tenant, rows);
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

-- A time-zone change moves day boundaries: item_day is rebuilt with the roll-ups and losses.
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
END $$;

-- item_day of one tenant from its lifecycle rows and uncorrected retiring item events.
CREATE FUNCTION circa_item_day_rebuild(p_tenant text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM item_day WHERE tenant_id = p_tenant;
    PERFORM circa_item_day_add(p_tenant,
        ARRAY(SELECT DISTINCT item FROM lifecycle WHERE tenant_id = p_tenant), 1);
    PERFORM circa_item_fate_add(p_tenant,
        ARRAY(SELECT e.id FROM event e
               WHERE e.tenant_id = p_tenant AND e.item IS NOT NULL
                 AND e.type IN ('recycled', 'energy_recovered', 'disposed')
                 AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                                  AND c.corrected = e.id)), 1);
END $$;

-- Existing tenants.
SELECT circa_item_day_rebuild(id) FROM tenant;
