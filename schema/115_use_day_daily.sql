-- Periods that start or end inside a month (docs/PERFORMANCE.md, Metrics, 115): the use-day
-- bucket counts of their partial months read every item_day E row of those days (one per life
-- ended: ~40,000 a month at 10 M events; 1 Jan – 17 Aug took 52 ms, 7 Mar – 23 Nov 100 ms).
--   use_day_daily  E rows per local end day, product and whole-day bucket b = floor(v): n and
--                  vsum (at most one row per day × product × bucket), kept by the item_day
--                  trigger of 112 beside use_day_fine.
-- circa_item_metrics reads the partial months' bucket counts from it; everything else as 114.
-- The partial months' item_day reads (L, M, fate, use-day buckets) name their days as an array
-- (`day = ANY (…)`, an index condition): the OR of two day ranges was planned as `day < to`,
-- reading every earlier row (all L rows before `to` for a period ending mid-month).
-- Citus: distributed like item_day and left empty; the functions are plain PostgreSQL only.

CREATE TABLE use_day_daily (
    tenant_id text NOT NULL,
    day       date NOT NULL,
    product   text NOT NULL,
    b         double precision NOT NULL,
    n         bigint NOT NULL,
    vsum      double precision NOT NULL,
    PRIMARY KEY (tenant_id, day, product, b)
);

DO $citus$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM create_distributed_table('use_day_daily', 'tenant_id', colocate_with => 'event');
    END IF;
END
$citus$;

DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    -- The days [fd, mw) and [lm, td): the partial months of a period whose whole months are
    -- [mw, lm). As an array, `day = ANY (…)` is an index condition; the OR of the two ranges
    -- was planned as `day < td` over every earlier row.
    EXECUTE $f$
CREATE FUNCTION circa_partial_days(fd date, td date, mw date, lm date) RETURNS date[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY(SELECT fd + g FROM generate_series(0, mw - fd - 1) g
                 UNION ALL
                 SELECT lm + g FROM generate_series(0, td - lm - 1) g)
$$;
$f$;
    -- 112's grids, and the E rows into use_day_daily.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_item_month_apply(p_old item_day[], p_new item_day[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH x AS (
        SELECT r.tenant_id, r.kind, r.day, r.d2, r.d3, r.product, r.v, -r.n AS n, -r.kg AS kg,
               -r.vsum AS vsum
          FROM unnest(p_old) r
        UNION ALL
        SELECT r.tenant_id, r.kind, r.day, r.d2, r.d3, r.product, r.v, r.n, r.kg, r.vsum
          FROM unnest(p_new) r
    ), grid AS (
        INSERT INTO item_month AS m
        SELECT tenant_id, kind, date_trunc('month', day::timestamp)::date,
               date_trunc('month', d2::timestamp)::date, date_trunc('month', d3::timestamp)::date,
               product, v, sum(n), sum(kg)
          FROM x WHERE kind <> 'E'
         GROUP BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (tenant_id, kind, m1, m2, m3, product, v)
        DO UPDATE SET n = m.n + EXCLUDED.n, kg = m.kg + EXCLUDED.kg
    ), daily AS (
        INSERT INTO use_day_daily AS y
        SELECT tenant_id, day, product, floor(v), sum(n), sum(vsum)
          FROM x WHERE kind = 'E'
         GROUP BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, day, product, b)
        DO UPDATE SET n = y.n + EXCLUDED.n, vsum = y.vsum + EXCLUDED.vsum
    )
    INSERT INTO use_day_fine AS u
    SELECT tenant_id, floor(v), date_trunc('month', day::timestamp)::date, product,
           floor(v * 64), sum(n)
      FROM x WHERE kind = 'E'
     GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (tenant_id, b, month, product, f) DO UPDATE SET n = u.n + EXCLUDED.n;
END $$;
$f$;
    -- 114's, with the partial months' days as an array.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_use_day_pair(p_tenant text, fd date, td date, mw date, lm date,
                                   p_product text, p_b double precision[], p_c bigint[],
                                   p_k bigint, p_both boolean)
RETURNS double precision[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    i integer;
    v_k bigint := p_k;
    v_b double precision;
    v_f double precision;
    r record;
    v_one double precision;
    v_cum numeric;
    v_n integer := 0;
    v_days date[] := circa_partial_days(fd, td, mw, lm);
BEGIN
    i := 1;
    WHILE i <= coalesce(cardinality(p_b), 0) AND v_k >= p_c[i] LOOP
        v_k := v_k - p_c[i];
        i := i + 1;
    END LOOP;
    IF i > coalesce(cardinality(p_b), 0) THEN
        RETURN ARRAY[NULL, NULL]::double precision[];
    END IF;
    v_b := p_b[i];
    FOR r IN SELECT z.f, sum(z.n)::bigint AS c
               FROM (SELECT u.f, u.n FROM use_day_fine u
                      WHERE u.tenant_id = p_tenant AND u.b = v_b
                        AND u.month >= mw AND u.month < lm
                        AND (p_product IS NULL OR u.product = p_product)
                     UNION ALL
                     SELECT floor(d.v * 64), d.n FROM item_day d
                      WHERE d.tenant_id = p_tenant AND d.kind = 'E' AND floor(d.v) = v_b
                        AND d.day = ANY (v_days)
                        AND (p_product IS NULL OR d.product = p_product)) z
              GROUP BY z.f HAVING sum(z.n) > 0 ORDER BY z.f LOOP
        v_f := r.f;
        EXIT WHEN v_k < r.c;
        v_k := v_k - r.c;
    END LOOP;
    FOR r IN SELECT x.v, x.cum FROM (
                 SELECT d.v, sum(sum(d.n)) OVER (ORDER BY d.v) AS cum
                   FROM item_day d
                  WHERE d.tenant_id = p_tenant AND d.kind = 'E' AND floor(d.v * 64) = v_f
                    AND d.day >= fd AND d.day < td
                    AND (p_product IS NULL OR d.product = p_product)
                  GROUP BY d.v HAVING sum(d.n) > 0) x
              WHERE x.cum > v_k
              ORDER BY x.v LIMIT 2 LOOP
        v_n := v_n + 1;
        IF v_n = 1 THEN
            v_one := r.v;
            v_cum := r.cum;
            -- Rank k + 1 holds the same value, or none is wanted.
            IF NOT p_both OR v_cum > v_k + 1 THEN
                RETURN ARRAY[v_one, v_one];
            END IF;
        ELSE
            RETURN ARRAY[v_one, r.v];
        END IF;
    END LOOP;
    -- Rank k + 1 is the first of a later 1/64-day bucket.
    RETURN ARRAY[v_one, (circa_use_day_pair(p_tenant, fd, td, mw, lm, p_product, p_b, p_c,
                                            p_k + 1, false))[1]];
END $$;
$f$;
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_item_metrics(p_tenant text, p_from timestamptz,
                                              p_to timestamptz, p_product text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_tz text;
    fd date;
    td date;
    fl date;     -- the month of fd
    tc date;     -- td, or the month after td's when td is not a month's first day
    v_items bigint; v_lives float8; v_dist jsonb;
    v_pct float8[];
    v_ended bigint; v_median float8; v_p90 float8; v_mean float8;
    v_market bigint; v_back bigint;
    v_fate jsonb; v_fate_n bigint; v_fate_kg float8;
    mw date; lm date; v_bb float8[]; v_bc bigint[]; v_vsum float8;
    j integer; v_p float8; v_x float8; v_two float8[];
    v_days date[];   -- the days of the partial months at either end
BEGIN
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    fd := (p_from AT TIME ZONE v_tz)::date;
    td := (p_to AT TIME ZONE v_tz)::date;
    SELECT s.mw, s.lm INTO mw, lm FROM circa_month_span(fd, td) s;
    fl := date_trunc('month', fd::timestamp)::date;
    tc := (date_trunc('month', (td - 1)::timestamp) + interval '1 month')::date;
    v_days := circa_partial_days(fd, td, mw, lm);

    -- Lives per item: L rows with day in [fd, td) and d2 >= td. Whole months of day with d2 in
    -- a month from tc on: the grid; the partial months of day, and d2 in [td, tc): item_day.
    SELECT coalesce(sum(c), 0), coalesce(sum(c * k), 0),
           coalesce(jsonb_object_agg(k::bigint::text, c) FILTER (WHERE c <> 0), '{}')
      INTO v_items, v_lives, v_dist
      FROM (SELECT z.v AS k, sum(z.n) AS c
              FROM (SELECT m.v, m.n FROM item_month m
                     WHERE m.tenant_id = p_tenant AND m.kind = 'L' AND m.m1 >= mw AND m.m1 < lm
                       AND m.m2 >= tc AND (p_product IS NULL OR m.product = p_product)
                    UNION ALL
                    SELECT i.v, i.n FROM item_day i
                     WHERE i.tenant_id = p_tenant AND i.kind = 'L' AND i.d2 >= td
                       AND i.day = ANY (v_days)
                       AND (p_product IS NULL OR i.product = p_product)
                    UNION ALL
                    SELECT i.v, i.n FROM item_day i
                     WHERE i.tenant_id = p_tenant AND i.kind = 'L' AND i.d2 >= td AND i.d2 < tc
                       AND i.day >= mw AND i.day < lm
                       AND (p_product IS NULL OR i.product = p_product)) z
             GROUP BY z.v HAVING sum(z.n) <> 0) x;

    -- Use days (102): bucket counts of the period (whole months from use_day_bucket, the
    -- partial months' days from use_day_daily), then percentile_cont's two ranks (114).
    SELECT array_agg(y.b ORDER BY y.b), array_agg(y.c ORDER BY y.b), sum(y.c), sum(y.s)
      INTO v_bb, v_bc, v_ended, v_vsum
      FROM (SELECT z.b, sum(z.n)::bigint AS c, sum(z.vsum) AS s
              FROM (SELECT u.b, u.n, u.vsum FROM use_day_bucket u
                     WHERE u.tenant_id = p_tenant AND u.month >= mw AND u.month < lm
                       AND (p_product IS NULL OR u.product = p_product)
                    UNION ALL
                    SELECT y.b, y.n, y.vsum FROM use_day_daily y
                     WHERE y.tenant_id = p_tenant
                       AND y.day = ANY (v_days)
                       AND (p_product IS NULL OR y.product = p_product)) z
             GROUP BY z.b HAVING sum(z.n) > 0) y;
    v_ended := coalesce(v_ended, 0);
    v_mean := v_vsum / nullif(v_ended, 0);
    v_pct := ARRAY[NULL, NULL]::float8[];
    IF v_ended > 0 THEN
        FOR j IN 1 .. 2 LOOP
            v_p := (ARRAY[0.5, 0.9]::float8[])[j];
            v_x := v_p * (v_ended - 1)::float8;
            v_two := circa_use_day_pair(p_tenant, fd, td, mw, lm, p_product, v_bb, v_bc,
                                        floor(v_x)::bigint, v_x <> floor(v_x));
            IF v_x = floor(v_x) THEN
                v_pct[j] := v_two[1];
            ELSE
                v_pct[j] := v_two[1] + (v_x - floor(v_x)) * (v_two[2] - v_two[1]);
            END IF;
        END LOOP;
    END IF;
    v_median := v_pct[1];
    v_p90 := v_pct[2];

    -- Return rate: M rows with day in [fd, td) and d2 < fd; returned when d3 < td. The grid
    -- decides whole months of day with d2's month before fl (and d3's before lm for the
    -- return); item_day gives the partial months of day, d2 in [fl, fd) and d3 in [lm, td).
    SELECT coalesce(sum(z.n) FILTER (WHERE z.market), 0),
           coalesce(sum(z.n) FILTER (WHERE z.back), 0)
      INTO v_market, v_back
      FROM (SELECT m.n, true AS market, m.m3 < lm AS back FROM item_month m
             WHERE m.tenant_id = p_tenant AND m.kind = 'M' AND m.m1 >= mw AND m.m1 < lm
               AND m.m2 < fl AND (p_product IS NULL OR m.product = p_product)
            UNION ALL
            SELECT i.n, true, i.d3 < td FROM item_day i
             WHERE i.tenant_id = p_tenant AND i.kind = 'M' AND i.d2 < fd
               AND i.day = ANY (v_days)
               AND (p_product IS NULL OR i.product = p_product)
            UNION ALL
            SELECT i.n, true, i.d3 < td FROM item_day i
             WHERE i.tenant_id = p_tenant AND i.kind = 'M' AND i.d2 >= fl AND i.d2 < fd
               AND i.day >= mw AND i.day < lm
               AND (p_product IS NULL OR i.product = p_product)
            UNION ALL
            SELECT i.n, false, true FROM item_day i
             WHERE i.tenant_id = p_tenant AND i.kind = 'M' AND i.d3 >= lm AND i.d3 < td
               AND i.d2 < fl AND i.day >= mw AND i.day < lm
               AND (p_product IS NULL OR i.product = p_product)) z;

    SELECT sum(r.n), sum(r.kg),
           jsonb_build_object('n', jsonb_object_agg(t.f, coalesce(r.n, 0)),
                              'kg', jsonb_object_agg(t.f, coalesce(r.kg, 0)))
      INTO v_fate_n, v_fate_kg, v_fate
      FROM unnest(ARRAY['recycled', 'energy_recovered', 'disposed']) t(f)
      LEFT JOIN (SELECT z.kind, sum(z.n) AS n, sum(z.kg) AS kg
                   FROM (SELECT m.kind, m.n, m.kg FROM item_month m
                          WHERE m.tenant_id = p_tenant
                            AND m.kind IN ('recycled', 'energy_recovered', 'disposed')
                            AND m.m1 >= mw AND m.m1 < lm
                            AND (p_product IS NULL OR m.product = p_product)
                         UNION ALL
                         SELECT i.kind, i.n, i.kg FROM item_day i
                          WHERE i.tenant_id = p_tenant
                            AND i.kind IN ('recycled', 'energy_recovered', 'disposed')
                            AND i.day = ANY (v_days)
                            AND (p_product IS NULL OR i.product = p_product)) z
                  GROUP BY z.kind) r ON r.kind = t.f;
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
$f$;

    -- Existing tenants.
    INSERT INTO use_day_daily
    SELECT tenant_id, day, product, floor(v), sum(n), sum(vsum)
      FROM item_day WHERE kind = 'E'
     GROUP BY 1, 2, 3, 4;
END $do$;
